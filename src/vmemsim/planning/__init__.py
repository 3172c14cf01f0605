"""From an inventory to an answer: `vmemsim import rvtools` (rvtools, calibrate) and
`vmemsim plan` (plan). docs/planning.md says what the answers depend on."""
