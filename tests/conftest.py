"""Session-wide fixtures. Service-backed fixtures live in tests/support and are loaded here."""

pytest_plugins = [
    "tests.support.adapters",
    "tests.support.fake_openai",
    "tests.support.mysql",
    "tests.support.redis",
    "tests.support.s3",
]
