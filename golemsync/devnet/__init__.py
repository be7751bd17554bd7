"""The golemsync devnet: a yagna-compatible Golem network on loopback."""
