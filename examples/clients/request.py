#!/usr/bin/env python3
"""Ask a medic engine for a verb on a VM, as a requester, and print the
engine's signed replies until it says the request is done.

    protoc --python_out=/tmp/medic-py -I proto proto/medic/v1/*.proto
    PYTHONPATH=/tmp/medic-py examples/clients/request.py \\
        --engine tcp://127.0.0.1:7704 --engine-key HEX --key app.key \\
        reboot --vm web-1 --reason "checkout answers 503" --wait

Debian packages: python3-zmq, python3-nacl, python3-protobuf. The wire is
described in docs/requests.md; this is one reading of it. Exit status as
`medic request`: 0 accepted (with --wait: healed), 1 refused or not healed,
2 a usage or set-up error.
"""
import argparse
import os
import struct
import sys
import time

import nacl.bindings
import nacl.exceptions
import nacl.signing
import zmq

from medic.v1 import actions_pb2, control_pb2, envelope_pb2

VERBS = {
    "reboot": actions_pb2.VERB_REBOOT,
    "reset": actions_pb2.VERB_RESET,
    "restart": actions_pb2.VERB_RESTART,
    "start": actions_pb2.VERB_START,
    "stop": actions_pb2.VERB_STOP,
    "clone": actions_pb2.VERB_CLONE,
    "delete": actions_pb2.VERB_DELETE,
}
TAGS = {
    envelope_pb2.KIND_CONTROL_REQUEST: b"medic/v1/control_request",
    envelope_pb2.KIND_CONTROL_REPLY: b"medic/v1/control_reply",
}


def load_key(path):
    """(public, secret) of a `medic keygen` file: 32 and 64 bytes."""
    fields = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, value = line.partition(":")
                fields[name.strip()] = bytes.fromhex(value.strip())
    return fields["public"], fields["secret"]


def signing_input(env):
    """The bytes an envelope's signature covers (little-endian integers)."""
    return b"".join([
        TAGS[env.kind], b"\0",
        struct.pack("<I", env.kind), env.sender,
        struct.pack("<QQIq", env.epoch, env.seq, env.stream, env.sent_at_ns),
        struct.pack("<I", len(env.host)), env.host,
        struct.pack("<Q", len(env.payload)), env.payload,
    ])


def seal(signer, public, payload, seq, epoch):
    env = envelope_pb2.Envelope(
        kind=envelope_pb2.KIND_CONTROL_REQUEST, sender=public, epoch=epoch, seq=seq,
        stream=0, sent_at_ns=time.time_ns(), host=b"", payload=payload)
    env.signature = signer.sign(signing_input(env)).signature
    return env.SerializeToString()


def open_reply(frame, engine_key):
    """The ControlReply in a frame the engine signed, or an exception."""
    env = envelope_pb2.Envelope()
    env.ParseFromString(frame)
    if env.kind != envelope_pb2.KIND_CONTROL_REPLY or env.sender != engine_key:
        raise ValueError("a reply not from the engine addressed")
    nacl.signing.VerifyKey(engine_key).verify(signing_input(env), env.signature)
    reply = control_pb2.ControlReply()
    reply.ParseFromString(env.payload)
    return reply


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("verb", choices=sorted(VERBS))
    p.add_argument("--vm", default="")
    p.add_argument("--label", default="", help="key=value")
    p.add_argument("--reason", default="")
    p.add_argument("--template", default="", help="clone: the template on the host")
    p.add_argument("--host", default="", help="clone: the host that holds the template")
    p.add_argument("--name", default="", help="clone: the new VM's name")
    p.add_argument("--wait", action="store_true", help="print every reply until done")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds")
    p.add_argument("--engine", default=os.environ.get("MEDIC_ENGINE", "tcp://127.0.0.1:7704"))
    p.add_argument("--engine-key", default=os.environ.get("MEDIC_ENGINE_KEY", ""))
    p.add_argument("--key", default=os.environ.get("MEDIC_KEY", ""))
    a = p.parse_args()
    if not a.engine_key or not a.key:
        p.error("give --engine-key and --key")
    if a.verb == "clone" and (a.vm or a.label or not (a.template and a.host and a.name)):
        p.error("a clone names --template, --host and --name, and no --vm or --label")
    if a.verb != "clone" and bool(a.vm) == bool(a.label):
        p.error("name exactly one of --vm and --label")

    public, secret = load_key(a.key)
    engine_key = bytes.fromhex(a.engine_key)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.curve_serverkey = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(engine_key)
    sock.curve_publickey = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(public)
    sock.curve_secretkey = nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(secret)
    sock.connect(a.engine)

    request = control_pb2.ControlRequest(request_id=os.urandom(8).hex())
    request.request.verb = VERBS[a.verb]
    request.request.vm = a.vm
    request.request.label = a.label
    request.request.reason = a.reason
    request.request.template_name = a.template
    request.request.host = a.host
    request.request.vm_name = a.name
    request.request.follow = a.wait
    signer = nacl.signing.SigningKey(secret[:32])
    sock.send(seal(signer, public, request.SerializeToString(), 1, time.time_ns() // 1_000_000))

    deadline = time.monotonic() + a.timeout
    failed = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not sock.poll(int(left * 1000)):
            print("request.py: no further word from the engine in time", file=sys.stderr)
            return 1
        try:
            reply = open_reply(sock.recv(), engine_key)
        except (ValueError, nacl.exceptions.BadSignatureError) as e:
            print(f"request.py: reply refused: {e}", file=sys.stderr)
            return 2
        if reply.request_id != request.request_id:
            continue
        stage = control_pb2.Stage.Name(reply.stage).removeprefix("STAGE_").lower()
        print(f"{stage}: {reply.text or reply.error}", flush=True)
        failed = failed or not reply.ok
        if reply.done:
            return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
