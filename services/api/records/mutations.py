"""The clinical record's mutation groups beyond the patient's first path: the rest of the
patient's commands, care plans, referrals, consultation notes and psychotherapy notes.

Each group is a strawberry type; ``CLINICAL_MUTATIONS`` lists them and schema.py merges
them into the root Mutation type.
"""

from __future__ import annotations

from services.api.patient.mutations import PatientCareMutation
from services.api.patient.psychotherapy import PsychotherapyNoteMutation
from services.api.records.care_plan import CarePlanMutation
from services.api.records.consultation import ConsultationMutation
from services.api.records.referral import ReferralMutation

CLINICAL_MUTATIONS: tuple[type, ...] = (
    PatientCareMutation,
    CarePlanMutation,
    ReferralMutation,
    ConsultationMutation,
    PsychotherapyNoteMutation,
)
