"""AWS Bedrock's Converse and ConverseStream APIs (``POST {base_url}/model/{modelId}/converse``
and ``/converse-stream``; botocore's bedrock-runtime service model, 2023-09-30).

Requests are signed with SigV4 by the core (service ``bedrock``), or carry a Bedrock API key as
``Authorization: Bearer``; where the credentials come from is aws_auth.py, the request and
answer shapes converse.py. ConverseStream answers in AWS event-stream frames (eventstream.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..aws_auth import SIGNING_NAME, AwsProfile, GivenAws
from ..content import WireParts
from ..core.errors import ProtocolError, UsageError
from ..core.sigv4 import AwsCredentials, AwsSigner, path_label
from ..types import CompletionResponse, Message, Tool
from .base import BaseProvider, system_parts
from .converse import ConverseStream, response_from, to_converse_messages

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

    from ..core.http import Response
    from ..credentials import Renewable
    from .base import Outgoing

MAX_TEMPERATURE = 1.0  # inferenceConfig.temperature is 0 to 1 on Bedrock


class BedrockProvider(BaseProvider):
    """AWS Bedrock's Converse API: SigV4 or a Bedrock API key, the model in the path,
    event-stream answers. Reasoning blocks and their signatures are kept in ``native`` and
    replayed verbatim to this provider, as Anthropic's thinking is."""

    provider_type = "bedrock"
    stream_format = "eventstream"
    extra_options = frozenset({"reasoning_budget"})
    # AWS answers 403 for credentials it does not know or that expired.
    renew_statuses = (401, 403)

    def renewable(self) -> Renewable | None:
        """SigV4 credentials (given, or a profile's, read again when the file changes), an
        api_key_file; else the key ring's Bedrock API keys."""
        config = self.config
        if config.aws_credentials is not None:
            return GivenAws(self.name, config.aws_credentials, config.key_source)
        if config.aws_profile:
            return AwsProfile(self.name, config.aws_credentials_file, config.aws_profile)
        return super().renewable()

    def request_url(self, opts: Mapping[str, Any], stream: bool) -> str:
        model = path_label(opts.get("model") or self.model)
        return f"{self.config.base_url}/model/{model}/{'converse-stream' if stream else 'converse'}"

    def endpoint(self) -> str:
        return self.request_url({}, False)

    def missing_credentials(self) -> str:
        if self.config.unset_keys:
            return super().missing_credentials()
        return (f"no credentials: set providers.{self.name}.api_key (a Bedrock API key), "
                "aws_access_key_id and aws_secret_access_key, or aws_profile; or "
                "AWS_BEARER_TOKEN_BEDROCK, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a "
                "profile in ~/.aws/credentials")

    def _send_as(self, call: Outgoing, credential: Any) -> Response:
        """SigV4: the core signs the request's final bytes (service ``bedrock``)."""
        if isinstance(credential, AwsCredentials):
            signer = AwsSigner(credential, self.config.region, SIGNING_NAME)
            return self._exchange(call, self.protocol_headers(), signer=signer)
        return super()._send_as(call, credential)

    def error_type_header(self, response: Response) -> str | None:
        """``x-amzn-ErrorType: ThrottlingException:http://internal.amazon.com/...`` -> the
        exception's name (botocore's RestJSONParser reads it so)."""
        value = response.header("x-amzn-errortype").split(":", 1)[0].rsplit("#", 1)[-1]
        return value.strip() or None

    def get_tool_schema(self, tools: Sequence[Tool]) -> list[dict[str, Any]]:
        return [{"toolSpec": {"name": t.name,
                              **({"description": t.description} if t.description else {}),
                              "inputSchema": {"json": t.object_schema()},
                              **({"strict": True} if t.strict else {})}} for t in tools]

    def build_body(self, messages: Sequence[Message], tools: Sequence[Tool] | None,
                   opts: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
        parts = WireParts("converse", self.name)
        body: dict[str, Any] = {"messages": to_converse_messages(messages, parts, self.name)}
        system = system_parts(messages, opts.get("system"))
        if system:
            body["system"] = parts.blocks([p for p in system if p.text], "system")
        inference: dict[str, Any] = {}
        if opts.get("max_tokens"):
            inference["maxTokens"] = opts["max_tokens"]
        temperature = opts.get("temperature")
        if temperature is not None:
            if temperature > MAX_TEMPERATURE:
                raise UsageError(f"{self.name}: Bedrock takes temperature from 0 to "
                                 f"{MAX_TEMPERATURE:g}, got {temperature!r}")
            inference["temperature"] = temperature
        if opts.get("stop"):
            stop = opts["stop"]
            inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
        if inference:
            body["inferenceConfig"] = inference
        if tools:
            body["toolConfig"] = {"tools": self.get_tool_schema(tools)}
        return body

    def parse_response(self, data: Any) -> CompletionResponse:
        output = data.get("output") if isinstance(data, Mapping) else None
        message = output.get("message") if isinstance(output, Mapping) else None
        if not isinstance(message, Mapping):
            raise ProtocolError("response has no output.message", provider=self.name)
        return response_from(message.get("content") or [], data.get("stopReason"),
                             data.get("usage") or {}, data, self.name, self.model)

    def new_accumulator(self) -> ConverseStream:
        return ConverseStream(self)
