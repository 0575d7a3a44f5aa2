"""The command-line parsing every entry point shares (it defines no flags itself).

absl's own parser exits 1 on --help and prints a multi-line "FATAL Flags parsing error"
for a misspelt flag; here asking for help prints the usage and exits 0 before required
flags are checked, and a bad command line is one `error:` line.
"""

from __future__ import annotations

import sys

from absl import app, flags

HELP_FLAGS = {"--help", "-h", "-?", "--helpshort", "--helpfull"}


def exit_on_help(argv) -> None:
  """Prints the usage and exits 0 when `argv` asks for help."""
  asked = set(argv[1:])
  if asked & HELP_FLAGS:
    app.usage(shorthelp="--helpfull" not in asked, writeto_stdout=True)
    sys.exit(0)


def parse(argv):
  """`flags.FLAGS(argv)` with help handled and flag errors as one line (an absl
  `flags_parser` for `app.run`)."""
  exit_on_help(argv)
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(f"error: {' '.join(str(e).split())}; see --help")


def run(main, required=(), parser=parse) -> None:
  """Every entry point's start: the process-level settings (`cnn_jax.platform`, before
  JAX's backend starts), the `required` flags, then absl's `app.run` with `parser`."""
  from cnn_jax import platform
  platform.start_process()
  if required:
    flags.mark_flags_as_required(list(required))
  app.run(main, flags_parser=parser)
