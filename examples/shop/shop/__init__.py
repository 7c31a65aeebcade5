"""A tiny shop: the code under test in the testlayer example."""
