"""The user commands' shared pieces: one set of device and run flags, and the policy built from them."""
