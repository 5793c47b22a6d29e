"""Text output: incremental detokenization and stop-string matching on streamed text."""

from tenon.output.detokenizer import IncrementalDetokenizer, special_token_ids
from tenon.output.stop_checker import StopResult, StopStringMatcher

__all__ = ["IncrementalDetokenizer", "StopResult", "StopStringMatcher", "special_token_ids"]
