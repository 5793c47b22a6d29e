"""tenon.server: `tenon serve`, an OpenAI-compatible HTTP frontend over an engine-core process."""
