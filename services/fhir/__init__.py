"""FHIR R4 under ``/fhir``: careteam's records as FHIR resources, and screenings in.

``mapping`` turns read model documents, care plans, events and access rows into resources
(pure), ``inbound`` reads a QuestionnaireResponse as a screening (pure), ``capability``
describes the server, ``routes`` is the thin HTTP layer with the GraphQL API's
authentication, authorisation and audit. See docs/fhir.md.
"""
