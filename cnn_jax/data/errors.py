"""The error every data problem a user can fix is reported as (one line, with the fix)."""


class DataError(Exception):
  pass
