"""The operator command line of videodb-retry: ``videodb-retry enqueue|redrive|status|local``.

It talks to a deployed stack (or an emulator with ``--endpoint-url``) with boto3 only, and
reuses the shared package's message contract so that an id it accepts is an id the retry
function accepts.
"""

PROG = "videodb-retry"
