"""The server side TLS context for the SMPP TLS port (SPEC §2).

Only loading and checking the certificate lives here; the handshake itself is done by
the asyncio (or uvloop) SSL transport, in memory, without blocking the event loop, and
before the SMPP protocol object sees a byte: a peer that never completes it (a plain-TCP
client, garbage, silence past the handshake timeout) is dropped by the transport and
never becomes an SMPP session.
"""

import ssl
from pathlib import Path


class TlsConfigError(ValueError):
    """The certificate or key cannot be used: one line for the operator."""


def server_context(cert_file: str, key_file: str = "") -> ssl.SSLContext:
    """A server context (TLS 1.2 or newer) with the PEM certificate chain and its key.

    `key_file` may be left empty when the key is in the certificate file.
    """
    if not cert_file:
        raise TlsConfigError("the SMPP TLS port needs a certificate: --tls-cert FILE "
                             "(and --tls-key FILE)")
    for what, name in (("certificate", cert_file), ("key", key_file)):
        if name and not Path(name).is_file():
            raise TlsConfigError(f"TLS {what} file {name!r} does not exist")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file or None)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        raise TlsConfigError(
            f"TLS certificate {cert_file!r} / key {key_file or cert_file!r} cannot be used "
            f"({reason}): both must be PEM, and the key must match the certificate"
        ) from None
    except OSError as exc:
        raise TlsConfigError(f"TLS certificate {cert_file!r} / key {key_file!r}: "
                             f"{exc.strerror or exc}") from None
    return context
