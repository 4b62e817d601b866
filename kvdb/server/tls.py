"""TLS for `kvdb serve`: the server's ssl.SSLContext from the tls-* options and
the TLS listeners (docs/security.md).

TLS 1.2 is the oldest version accepted (tls-protocols may narrow it to 1.3).
tls-auth-clients: yes requires a client certificate that chains to
tls-ca-cert-file / tls-ca-cert-dir, optional verifies one when sent, no never
asks. A client that does not complete the handshake within
HANDSHAKE_TIMEOUT seconds, or speaks plaintext, is dropped before it reaches
the command layer.
"""
import logging
import ssl

from .config import ConfigError

log = logging.getLogger("kvdb.server")

HANDSHAKE_TIMEOUT = 10.0   # seconds for a TLS client to finish its handshake

_VERIFY = {"yes": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "no": ssl.CERT_NONE}
_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def server_context(config):
    """The SSLContext for tls-port, or None when tls-port is 0; ConfigError when a file is missing or bad."""
    if not config["tls-port"]:
        return None
    cert, key = config["tls-cert-file"], config["tls-key-file"]
    if not cert or not key:
        raise ConfigError("tls-port needs tls-cert-file and tls-key-file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    versions = [_VERSIONS[v] for v in config["tls-protocols"].split()]
    ctx.minimum_version = min(versions)
    ctx.maximum_version = max(versions)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        ctx.load_cert_chain(cert, key, password=config["tls-key-file-pass"] or None)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load tls-cert-file {cert} / tls-key-file {key}: {e}") from None
    mode = config["tls-auth-clients"]
    ca_file, ca_dir = config["tls-ca-cert-file"], config["tls-ca-cert-dir"]
    if mode != "no":
        if not ca_file and not ca_dir:
            raise ConfigError(f"tls-auth-clients {mode} needs tls-ca-cert-file or tls-ca-cert-dir "
                              "(or set tls-auth-clients no)")
        try:
            ctx.load_verify_locations(cafile=ca_file or None, capath=ca_dir or None)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"cannot load the TLS CA certificates {ca_file or ca_dir}: {e}") from None
    ctx.verify_mode = _VERIFY[mode]
    return ctx


async def start_listeners(server, client_factory):
    """Listens on tls-port on every bind address; records the port in server.tls_port."""
    cfg = server.config
    port = cfg["tls-port"]
    for host in cfg["bind"].split():
        srv = await server.loop.create_server(client_factory, host=host, port=port, backlog=cfg["tcp-backlog"],
                                              reuse_address=True, ssl=server.tls_context,
                                              ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        server.listeners.append(srv)
        server.tls_port = srv.sockets[0].getsockname()[1]
    log.info("TLS listening on %s port %s (client certificates: %s)", cfg["bind"], server.tls_port,
             cfg["tls-auth-clients"])


def peer_certificate_subject(transport):
    """The client certificate's subject as 'CN=...,O=...' (empty when none)."""
    obj = transport.get_extra_info("ssl_object")
    cert = obj.getpeercert() if obj is not None else None
    if not cert:
        return ""
    return ",".join(f"{k}={v}" for rdn in cert.get("subject", ()) for k, v in rdn)
