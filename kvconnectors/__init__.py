"""tenon_kvconnectors: KV connectors shipped with Tenon, registered like a third party's.

- `shared_storage`: `SharedStorageConnector`, prefill/decode disaggregation through a directory
  that two engines share (the producer prefills and saves, the consumer loads and decodes).
"""
