"""threadwise's own suite uses its public test helpers: `threadwise_leak_check = true` in
pyproject.toml makes the plugin fail every test that leaves a thread running."""

pytest_plugins = ["pytester"]
