"""ClickHouse's HTTP interface, served by the ClickHouse engine of PyPI's chdb-core.

Why this exists: no current ClickHouse server binary can be installed on machines without Docker
that only reach PyPI, crates.io, npm, Maven Central and Debian (Debian's clickhouse-server is 18.16
from 2018 and lacks TTL, DateTime64, Map and window functions). chdb-core embeds the current engine
in-process, so this adapter puts the part of the HTTP protocol that the official Rust `clickhouse`
crate speaks in front of it:

* the query in the `query` URL parameter or in the body; when both, the body is INSERT data;
* `INSERT ... FORMAT <fmt>` bodies (RowBinary and any other input format);
* `default_format` (the crate asks for RowBinaryWithNamesAndTypes to validate schemas);
* `param_<name>` server-side query parameters and every other URL parameter as a setting, for
  that query only; `readonly` is checked here instead (a statement that is not a read is
  refused with code 164), because the engine's session, shared by every client, could not be
  set back from readonly;
* errors as ClickHouse reports them: HTTP status, `X-ClickHouse-Exception-Code`, message body.

It runs one query at a time (chdb allows one session per data directory) and persists tables in the
directory given by --path. Block-level compression (`compress=1`, `decompress=1`) is refused with a
clear error: configure the client with `Compression::None`. It binds 127.0.0.1 only.
"""

import argparse
import os
import re
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from chdb import session as chdb_session

# URL parameters that steer the protocol rather than name a setting.
PROTOCOL_PARAMS = {
    "query", "database", "default_format", "query_id", "session_id", "session_timeout",
    "session_check", "user", "password", "role", "wait_end_of_query", "buffer_size",
    "compress", "decompress", "enable_http_compression", "http_native_compression_disable_checksumming_on_decompress",
}

# ClickHouse answers some exception codes with 4xx instead of 500 (src/Server/HTTPHandler.cpp).
STATUS_BY_CODE = {
    # 400: the request itself is wrong
    **{code: 400 for code in (
        6, 16, 26, 27, 32, 33, 34, 35, 36, 38, 41, 43, 44, 47, 53, 62, 69, 70, 72, 115, 117, 131,
        135, 167, 168, 184, 190, 194, 352, 457, 465, 6000)},
    # 404: something named does not exist
    **{code: 404 for code in (46, 50, 60, 81, 83, 107, 158)},
    # 403: permissions and readonly
    **{code: 403 for code in (164, 497, 516)},
}
CODE_RE = re.compile(r"Code:\s*(\d+)")
READ_RE = re.compile(r"\s*\(*\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN)\b", re.I)
FORMAT_TAIL_RE = re.compile(r"^(?P<head>.*?)\s+FORMAT\s+(?P<fmt>\w+)\s*;?\s*$", re.S | re.I)


class QueryError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class Engine:
    """One chdb session behind a lock: the protocol is concurrent, the engine is not."""

    def __init__(self, path):
        self.session = chdb_session.Session(path)
        self.lock = threading.Lock()
        self.version = self._run("SELECT version()", "TabSeparated").strip().decode()

    def _run(self, sql, fmt, params=None):
        try:
            return self.session.query(sql, fmt, params=params or None).bytes()
        except Exception as exc:  # chdb raises ChdbError carrying ClickHouse's own message
            message = str(exc).strip()
            match = CODE_RE.search(message)
            raise QueryError(int(match.group(1)) if match else 1001, message) from exc

    def execute(self, sql, fmt, database, settings, params, data):
        with self.lock:
            self._run(f"USE `{database.replace('`', '')}`", "TabSeparated")
            previous = {}
            if settings.pop("readonly", "0") != "0" and not READ_RE.match(sql):
                raise QueryError(164, "Code: 164. DB::Exception: Cannot execute query in readonly mode. (READONLY)")
            try:
                for name, value in settings.items():
                    if not re.fullmatch(r"\w+", name):
                        raise QueryError(115, f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)")
                    previous[name] = self._run(
                        f"SELECT toString(getSetting('{name}'))", "TabSeparatedRaw").rstrip(b"\n").decode()
                    self._run(f"SET {name} = {quote(value)}", "TabSeparated")
                return self._execute_with_data(sql, fmt, params, data)
            finally:
                for name, value in previous.items():
                    self._run(f"SET {name} = {quote(value)}", "TabSeparated")

    def _execute_with_data(self, sql, fmt, params, data):
        if not data:
            return self._run(sql, fmt, params)
        match = FORMAT_TAIL_RE.match(sql)
        if not match:
            # `INSERT INTO t VALUES` with the values in the body
            return self._run(sql + " " + data.decode("utf-8", "replace"), fmt, params)
        with tempfile.NamedTemporaryFile(prefix="chdb-insert-", suffix=".bin") as tmp:
            tmp.write(data)
            tmp.flush()
            infile = f"{match.group('head')} FROM INFILE {quote(tmp.name)} FORMAT {match.group('fmt')}"
            return self._run(infile, fmt, params)


def quote(value):
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def make_handler(engine):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "chdb-http"
        # Headers and body go out in two writes: with Nagle's algorithm the second waits for the
        # client's delayed ACK of the first, 40 ms on every answer of a kept-alive connection.
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):
            pass  # one line per request is written by _answer instead

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path in ("/ping", "/") and "query" not in dict(parse_qsl(url.query)):
                return self._send(200, b"Ok.\n", {})
            return self._query(url, b"")

        def do_POST(self):
            return self._query(urlsplit(self.path), self._read_body())

        def _read_body(self):
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _query(self, url, body):
            started = time.monotonic()
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            try:
                if any(params.get(p) == "1" for p in ("compress", "decompress")) or \
                        self.headers.get("Content-Encoding", "identity") != "identity":
                    raise QueryError(36, "Code: 36. DB::Exception: this chdb HTTP adapter does not "
                                         "support compressed bodies; configure the client with "
                                         "Compression::None. (BAD_ARGUMENTS)")
                if "query" in params:
                    sql, data = params["query"], body
                else:
                    sql, data = body.decode("utf-8"), b""
                if not sql.strip():
                    raise QueryError(62, "Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)")
                fmt = params.get("default_format", "TabSeparated")
                query_params = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
                settings = {k: v for k, v in params.items()
                            if k not in PROTOCOL_PARAMS and not k.startswith("param_")}
                result = engine.execute(sql, fmt, params.get("database", "default"),
                                        settings, query_params, data)
            except QueryError as err:
                message = f"{err} (version {engine.version} (chdb-core))\n".encode()
                status = STATUS_BY_CODE.get(err.code, 500)
                self._send(status, message, {"X-ClickHouse-Exception-Code": str(err.code)})
                return self._log(status, sql_preview(params, body), started)
            summary = f'{{"elapsed_ns":"{int((time.monotonic() - started) * 1e9)}"}}'
            self._send(200, result, {"X-ClickHouse-Format": fmt, "X-ClickHouse-Summary": summary})
            self._log(200, sql_preview(params, body), started)

        def _send(self, status, payload, headers):
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream" if status == 200 else "text/plain; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-ClickHouse-Server-Display-Name", "chdb-http")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def _log(self, status, sql, started):
            print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {status} {1000 * (time.monotonic() - started):.1f}ms {sql}",
                  flush=True)

    return Handler


def sql_preview(params, body):
    text = params.get("query") or body[:200].decode("utf-8", "replace")
    return " ".join(text.split())[:160]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", required=True, help="data directory (one adapter per directory)")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    os.makedirs(args.path, exist_ok=True)
    engine = Engine(args.path)
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer((args.host, args.port), make_handler(engine))
    server.daemon_threads = True
    print(f"chdb-http: ClickHouse {engine.version} (chdb-core) on http://{args.host}:{args.port}, data in {args.path}",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
