"""The CLI, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import CANARY

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "config.yaml"


def run(*args: str, env: dict[str, str] | None = None,
        python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.endswith("_API_KEY") and k not in ("MISSY_CONFIG", "OLLAMA_HOST",
                                                        "OPENAI_BASE_URL", "CODEX_HOME")}
    return subprocess.run([sys.executable, *python_flags, "-m", "missy", *args], cwd=ROOT,
                          env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=60)


def test_providers_table_on_the_example_config() -> None:
    result = run("providers", "--config", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "MODEL", "ENDPOINT", "KEY", "ENABLED",
                                "READY"]
    assert lines[1].startswith("anthropic (default)")
    assert "claude-sonnet-4-6 (fast: claude-haiku-4-5, premium: claude-opus-4-6)" in lines[1]
    ollama = next(line for line in lines if line.startswith("ollama"))
    assert "http://localhost:11434" in ollama and ollama.split()[-2:] == ["yes", "yes"]
    assert lines[-1].startswith("READY: credentials present, nothing contacted")
    assert result.stderr == ""


def test_providers_json_and_env_key_is_never_printed() -> None:
    result = run("providers", "--json", "--config", str(EXAMPLE),
                 env={"ANTHROPIC_API_KEY": CANARY, "OPENAI_API_KEY": CANARY})
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)["providers"]}
    assert rows["anthropic"]["key_source"] == "env ANTHROPIC_API_KEY"
    assert rows["anthropic"]["ready"] is True and rows["anthropic"]["available"] is None
    assert rows["openai"]["key_source"] == "env OPENAI_API_KEY"
    assert rows["openrouter"]["enabled"] is False
    assert CANARY not in result.stdout + result.stderr


def test_missy_config_env_and_config_keys_never_printed(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"providers:\n  anthropic:\n    model: m\n    api_keys: [{CANARY}, "
                   f"{CANARY}-2]\n")
    for args in (("providers",), ("providers", "--json")):
        result = run(*args, env={"MISSY_CONFIG": str(cfg)})
        assert result.returncode == 0, result.stderr
        assert "2 keys" in result.stdout
        assert CANARY not in result.stdout + result.stderr


def test_config_error_exits_2_with_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"providers:\n  anthropic:\n    modle: m\n    api_key: {CANARY}\n")
    result = run("providers", "--config", str(cfg))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"missy: ConfigError: {cfg}: unknown key 'modle'; did you "
                                    "mean 'model'?")
    assert CANARY not in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_exits_2(tmp_path: Path) -> None:
    result = run("providers", "--config", str(tmp_path / "none.yaml"))
    assert result.returncode == 2
    assert "config file not found" in result.stderr


def test_usage_error_exits_2() -> None:
    result = run("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_core_runs_without_pyyaml(tmp_path: Path) -> None:
    """-S: no site-packages, so no PyYAML. The package imports and a JSON config works."""
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"providers": {"ollama": {"model": "llama3.2"}}}))
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
            "import missy_providers as m\n"
            "try:\n    import yaml\nexcept ImportError:\n    print('no yaml')\n"
            "r = m.ProviderRegistry.from_config({'providers': {'ollama': {'model': 'x'}}})\n"
            "print(r.get('ollama').model)\n")
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.stdout.split() == ["no", "yaml", "x"], result.stderr
    cli = subprocess.run([sys.executable, "-S", str(ROOT / "missy.py"), "providers",
                          "--config", str(cfg)], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    assert "llama3.2" in cli.stdout
