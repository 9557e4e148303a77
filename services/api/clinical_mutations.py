"""The clinical record's mutation groups beyond the patient's first path: the rest of the
patient's commands, care plans, referrals, consultation notes and psychotherapy notes.

Each group is a strawberry type; ``CLINICAL_MUTATIONS`` lists them and schema.py merges
them into the root Mutation type.
"""

from __future__ import annotations

from services.api.mutations_care_plan import CarePlanMutation
from services.api.mutations_consultation import ConsultationMutation
from services.api.mutations_patient import PatientCareMutation
from services.api.mutations_referral import ReferralMutation
from services.api.psychotherapy import PsychotherapyNoteMutation

CLINICAL_MUTATIONS: tuple[type, ...] = (
    PatientCareMutation,
    CarePlanMutation,
    ReferralMutation,
    ConsultationMutation,
    PsychotherapyNoteMutation,
)
