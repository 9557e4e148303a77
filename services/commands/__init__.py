"""The application layer's command path: commands as data (``commands.py``) and the one
``handle`` that authorises, loads, executes, appends and waits for the read models
(``handler.py``). No GraphQL here: the API, FHIR, seed and CLI all call ``handle``."""
