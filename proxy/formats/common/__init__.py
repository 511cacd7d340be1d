"""What every format shares, written once: HTTP helpers, serving assets, the asset locator and the
merged-document cache, each parameterised by the format."""
