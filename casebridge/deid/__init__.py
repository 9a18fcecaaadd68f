"""De-identification by DICOM PS3.15 Annex E: a library (no models, no views). See docs/deid.md."""

from casebridge.deid.dicom import Change, Refused, Report, Result, deidentify, new_uid
from casebridge.deid.table import Options

__all__ = ["Change", "Options", "Refused", "Report", "Result", "deidentify", "new_uid"]
