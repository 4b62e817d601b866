"""TLS (kvdb/server/tls.py): certificates are generated in the test with the
`cryptography` package; redis-py with ssl=True works, plaintext on the TLS port
fails, client-certificate modes yes/optional/no, TLS older than 1.2 refused,
and --port 0 turns the plaintext listener off.
"""
import datetime
import ipaddress
import json
import socket
import ssl
import time

import pytest

from tests.securityutil import RawClient
from tests.serverutil import ServerProcess, free_port

redis = pytest.importorskip("redis")
x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject_cn, issuer_cert, issuer_key, key, *, ca=False, server=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(subject_cn))
         .issuer_name(issuer_cert.subject if issuer_cert is not None else _name(subject_cn))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                            critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(path, cert=None, key=None):
    data = b""
    if cert is not None:
        data += cert.public_bytes(serialization.Encoding.PEM)
    if key is not None:
        data += key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    path.write_bytes(data)
    return str(path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("kvdb test CA", None, ca_key, ca_key, ca=True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = _cert("localhost", ca, ca_key, srv_key, server=True)
    cli_key = ec.generate_private_key(ec.SECP256R1())
    cli = _cert("test-client", ca, ca_key, cli_key)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = _cert("someone else's CA", None, other_key, other_key, ca=True)
    stranger = _cert("stranger", other_ca, other_key, cli_key)
    return {"ca": _write(d / "ca.pem", ca), "cert": _write(d / "server.pem", srv),
            "key": _write(d / "server.key", key=srv_key), "client_cert": _write(d / "client.pem", cli),
            "client_key": _write(d / "client.key", key=cli_key), "stranger_cert": _write(d / "stranger.pem", stranger)}


def _tls_server(tmp_path, pki, mode, *extra):
    """A server whose only listener is TLS (--port 0); ServerProcess's readiness probe uses the TLS port."""
    port = free_port()
    return ServerProcess(tmp_path, "--port", "0", "--tls-port", str(port), "--tls-cert-file", pki["cert"],
                         "--tls-key-file", pki["key"], "--tls-ca-cert-file", pki["ca"], "--tls-auth-clients", mode,
                         *extra, port=port)


def _client(srv, pki, cert=True, **kw):
    opts = dict(ssl=True, ssl_ca_certs=pki["ca"], ssl_cert_reqs="required", socket_timeout=10, retry=None)
    if cert:
        opts.update(ssl_certfile=pki["client_cert"], ssl_keyfile=pki["client_key"])
    opts.update(kw)
    return redis.Redis(host="127.0.0.1", port=srv.port, **opts)


def test_tls_with_client_certificates(tmp_path, pki):
    audit = tmp_path / "audit.jsonl"
    with _tls_server(tmp_path, pki, "yes", "--audit-log", str(audit)) as srv:
        r = _client(srv, pki)
        assert r.set("k", "v") and r.get("k") == b"v"
        info = r.info("server")
        assert info["tcp_port"] == 0        # --port 0: no plaintext listener
        with pytest.raises(redis.ConnectionError):
            _client(srv, pki, cert=False).ping()          # a certificate is required
        with pytest.raises(redis.ConnectionError):
            _client(srv, pki, ssl_certfile=pki["stranger_cert"]).ping()   # signed by another CA
        assert r.ping()                                     # the server is still fine
    connects = [json.loads(line) for line in audit.read_text().splitlines() if '"connect"' in line]
    assert any(e["tls"] and e["cert"] == "commonName=test-client" for e in connects), connects


def test_plaintext_on_the_tls_port_is_refused(tmp_path, pki):
    with _tls_server(tmp_path, pki, "no") as srv:
        with RawClient(srv.port) as rc:
            rc.send(b"*1\r\n$4\r\nPING\r\n")
            rc.sock.settimeout(15)
            data = b""
            try:
                while True:
                    chunk = rc.sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except (ConnectionResetError, socket.timeout):
                pass
            assert b"PONG" not in data
        with pytest.raises(redis.ConnectionError):
            redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=5, retry=None).ping()
        assert _client(srv, pki, cert=False).ping()


def test_optional_client_certificates(tmp_path, pki):
    with _tls_server(tmp_path, pki, "optional") as srv:
        assert _client(srv, pki, cert=False).ping()
        assert _client(srv, pki).ping()
        with pytest.raises(redis.ConnectionError):
            _client(srv, pki, ssl_certfile=pki["stranger_cert"]).ping()   # sent, so it must verify


def test_tls_older_than_1_2_is_refused(tmp_path, pki):
    with _tls_server(tmp_path, pki, "no") as srv:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(pki["ca"])
        try:
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        except (ValueError, ssl.SSLError):
            pytest.skip("this OpenSSL cannot even offer TLS 1.1")
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
            with pytest.raises((ssl.SSLError, ConnectionResetError)):
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(b"PING\r\n")
                    s.recv(10)
        ctx13 = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx13.load_verify_locations(pki["ca"])
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
            with ctx13.wrap_socket(raw, server_hostname="localhost") as s:
                assert s.version() in ("TLSv1.2", "TLSv1.3")
                s.sendall(b"PING\r\n")
                assert s.recv(10) == b"+PONG\r\n"


def test_plaintext_and_tls_side_by_side_and_config_errors(tmp_path, pki):
    tls_port = free_port()
    with ServerProcess(tmp_path, "--tls-port", str(tls_port), "--tls-cert-file", pki["cert"],
                       "--tls-key-file", pki["key"], "--tls-auth-clients", "no") as srv:
        assert srv.client().ping()
        r = redis.Redis(host="127.0.0.1", port=tls_port, ssl=True, ssl_ca_certs=pki["ca"], socket_timeout=10)
        assert r.ping()
        assert "tls-auth-clients" in {k for k in srv.client().config_get("tls-*")} or \
            b"tls-auth-clients" in srv.client().config_get("tls-*")
    for args, message in ((["--tls-cert-file", pki["cert"]], "needs tls-cert-file and tls-key-file"),
                          (["--tls-cert-file", pki["cert"], "--tls-key-file", pki["key"]],
                           "needs tls-ca-cert-file"),
                          (["--tls-cert-file", str(tmp_path / "missing.pem"), "--tls-key-file", pki["key"],
                            "--tls-auth-clients", "no"], "cannot load tls-cert-file")):
        bad = ServerProcess(tmp_path, "--tls-port", str(free_port()), *args)
        with pytest.raises(RuntimeError, match=message):
            bad.start()
        bad.stop()


def test_redis_cli_over_tls(tmp_path, pki):
    import shutil
    import subprocess
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("redis-cli is not installed")
    if "--tls" not in subprocess.run([cli, "--help"], capture_output=True, text=True).stdout + \
            subprocess.run([cli, "--help"], capture_output=True, text=True).stderr:
        pytest.skip("this redis-cli has no TLS support")
    with _tls_server(tmp_path, pki, "yes") as srv:
        out = subprocess.run([cli, "-h", "127.0.0.1", "-p", str(srv.port), "--tls", "--cacert", pki["ca"], "--cert",
                              pki["client_cert"], "--key", pki["client_key"], "PING"],
                             capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == "PONG", out


def test_a_replica_follows_its_primary_over_tls(tmp_path, pki):
    """tls-replication yes: the replica connects to the primary's TLS port with the client
    certificate (tls-client-cert-file), and the primary's certificate is verified against
    tls-ca-cert-file; without a certificate the primary refuses it."""
    with _tls_server(tmp_path, pki, "yes", "--data", str(tmp_path / "p")) as primary:
        pc = _client(primary, pki)
        pc.set("over", "tls")
        common = ["--tls-replication", "yes", "--tls-ca-cert-file", pki["ca"],
                  "--replicaof", f"127.0.0.1 {primary.port}"]
        with ServerProcess(tmp_path, *common, "--tls-client-cert-file", pki["client_cert"],
                           "--tls-client-key-file", pki["client_key"], data=tmp_path / "r") as replica:
            rc = replica.client()
            deadline = time.monotonic() + 30
            while rc.info("replication")["master_link_status"] != "up" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert rc.get("over") == b"tls"
            pc.set("then", "more")
            assert pc.wait(1, 10000) == 1 and rc.get("then") == b"more"
        with ServerProcess(tmp_path, *common, data=tmp_path / "r2") as stranger:    # no client certificate
            sc = stranger.client()
            time.sleep(1.5)
            info = sc.info("replication")
            assert info["master_link_status"] == "down" and sc.get("over") is None
