"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1:PORT, writing every message
it receives as JSON ({from, to, data, auth}) into DIR. Optional AUTH (PLAIN/LOGIN over
plain text, for tests only) with USER:PASS. Prints "ready" when it accepts
connections and stops when its standard input closes (the test process ended).

usage: smtp_sink.py PORT DIR [USER:PASS]
"""

import json
import os
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port = int(sys.argv[1])
directory = sys.argv[2]
credentials = sys.argv[3] if len(sys.argv) > 3 else None


class Sink:
    def __init__(self):
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        path = os.path.join(directory, "%04d.json" % self.n)
        with open(path + ".tmp", "w") as f:
            json.dump(
                {
                    "from": envelope.mail_from,
                    "to": envelope.rcpt_tos,
                    "data": envelope.content.decode("utf8", "replace"),
                    "auth": bool(session.authenticated),
                },
                f,
            )
        os.rename(path + ".tmp", path)
        return "250 Message accepted"


def authenticator(server, session, envelope, mechanism, auth_data):
    if not isinstance(auth_data, LoginPassword) or credentials is None:
        return AuthResult(success=False, handled=False)
    user, _, password = credentials.partition(":")
    ok = auth_data.login.decode() == user and auth_data.password.decode() == password
    return AuthResult(success=ok)


kwargs = {}
if credentials is not None:
    kwargs = dict(
        authenticator=authenticator, auth_required=True, auth_require_tls=False
    )
controller = Controller(Sink(), hostname="127.0.0.1", port=port, **kwargs)
controller.start()
print("ready", flush=True)
try:
    sys.stdin.read()
finally:
    controller.stop()
