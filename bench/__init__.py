"""The benchmark harness: `python -m bench` (see bench/__main__.py). Not part of the test suite."""

import warnings

# Importing the service's HubSpot client imports Connexion, which imports Starlette's test
# client, which warns about its HTTP library (the service silences it the same way).
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
