"""The security-relevant core: credentials, signing and what they depend on, audited together."""
