"""The moto server serve mode puts in front of the emulated stack, and the stack's record in it.

moto's in-process mock and its ``ThreadedMotoServer`` share one set of backends, so what the
emulated stack created in-process is what ``aws --endpoint-url`` and ``videodb-retry
--endpoint-url`` see through this server. The stack's CloudFormation record lets
``videodb-retry --stack-name`` find those resources by its Outputs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import warnings
from collections.abc import Iterator

from moto.server import ThreadedMotoServer

from videodb_retry_local.stack.emulated_stack import EmulatedStack

SERVER_START_SECONDS = 10.0


class OneLineErrors(logging.Filter):
    """The moto server's request errors in one line (e.g. an action moto does not implement)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the record, cut to the traceback's last line (werkzeug puts it in the text)."""
        text = record.getMessage()
        if text.startswith("Error on request"):
            lines = [line for line in text.splitlines() if line.strip()]
            record.msg, record.args = "aws emulator: %s", (lines[-1].strip(),)
        record.exc_info, record.exc_text = None, None
        return True


def quiet_request_log() -> None:
    """No request log from the moto server, and its errors in one line (werkzeug logs both)."""
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.setLevel(logging.ERROR)
    if not any(isinstance(f, OneLineErrors) for f in werkzeug.filters):
        werkzeug.addFilter(OneLineErrors())


def start_moto_server(port: int, host: str) -> ThreadedMotoServer:
    """A moto server on host:port, started within SERVER_START_SECONDS (else TimeoutError)."""
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    # start() waits for the bind without a limit and the bind happens in its thread; if it
    # fails there, start() would wait forever. So wait for it here, bounded.
    starter = threading.Thread(target=server.start, name="moto-server-start", daemon=True)
    starter.start()
    starter.join(SERVER_START_SECONDS)
    if starter.is_alive():
        raise TimeoutError(
            f"the moto server did not start on {host}:{port} within {SERVER_START_SECONDS:.0f} s"
        )
    return server


def create_record_stack(stack: EmulatedStack) -> None:
    """A CloudFormation stack in the emulator whose Outputs are the emulated stack's outputs."""
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (
            "Record of the videodb-retry stack emulated by `videodb-retry local --serve`: the "
            "Outputs name resources created directly in the emulator, not by this stack."
        ),
        # CloudFormation wants at least one resource; this one does nothing.
        "Resources": {"Placeholder": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {
            key: {
                "Description": "created by videodb_retry_local.stack.emulated_stack.EmulatedStack",
                "Value": str(value),
            }
            for key, value in sorted(stack.outputs.items())
        },
    }
    with _moto_warnings_silenced():  # moto warns it does not model WaitConditionHandle
        stack.client("cloudformation").create_stack(
            StackName=stack.ids.stack_name,
            TemplateBody=json.dumps(template),
        )


@contextlib.contextmanager
def _moto_warnings_silenced() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def endpoint_of(server: ThreadedMotoServer) -> str:
    """``http://HOST:PORT`` of a started moto server."""
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}"
