"""FHIR R4 export: careteam's read models as FHIR resources under ``/fhir``.

``mapping`` turns a patient view document into resources (pure), ``capability`` describes
the server, ``routes`` is the thin HTTP layer with the GraphQL API's authentication,
authorisation and read audit. See docs/fhir.md.
"""
