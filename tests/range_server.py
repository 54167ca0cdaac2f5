"""A static HTTP server that honours single ``Range: bytes=a-b`` requests (python's own handler
ignores Range and always sends the whole file), for the cloud-access tests.

Run as ``python range_server.py FOLDER LOG``: serves FOLDER on 127.0.0.1 (a free port, printed on
the first line of stdout) and appends one JSON line ``[method, path, range]`` per request to LOG.
It runs in a process of its own: GDAL's reads (through rasterio) hold the GIL, so a server thread
in the reading process would never get to answer.
"""

from __future__ import annotations

import json
import re
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class RangeHandler(SimpleHTTPRequestHandler):
    log_path = None

    def log_message(self, *args):  # quiet
        pass

    def send_head(self):
        with open(self.log_path, "a") as f:
            f.write(json.dumps([self.command, self.path, self.headers.get("Range")]) + "\n")
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return None
        size = path.stat().st_size
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range") or "")
        if not m or (m[1] == "" and m[2] == ""):
            start, end, status = 0, size - 1, 200
        elif m[1] == "":  # the last N bytes
            start, end, status = max(0, size - int(m[2])), size - 1, 206
        else:
            start, end, status = int(m[1]), min(int(m[2]) if m[2] else size - 1, size - 1), 206
        if start >= size:
            self.send_error(416)
            return None
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        f = open(path, "rb")
        f.seek(start)
        self._left = end - start + 1
        return f

    def copyfile(self, source, outputfile):
        while self._left > 0:
            buf = source.read(min(65536, self._left))
            if not buf:
                break
            outputfile.write(buf)
            self._left -= len(buf)


def main(folder: str, log: str) -> None:
    handler = type("Handler", (RangeHandler,), {"log_path": log})
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=folder))
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
