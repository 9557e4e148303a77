#!/usr/bin/env bash
# Refreshes the GraphiQL assets careteam serves itself (services/api/static/graphiql/), so
# GraphiQL works on a network with no way out (no CDN). It takes the exact files that
# strawberry's GraphiQL page names, from the npm registry, and checks each against the
# Subresource Integrity hash in that page: the browser checks the same hash again.
# Run it after upgrading strawberry-graphql, then commit the folder. Needs npm and uv.
set -euo pipefail
export PATH="$HOME/.local/bin:$PATH"
cd "$(dirname "$0")/../.."
dest="services/api/static/graphiql"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
uv run python - "$work" "$dest" <<'PY'
import base64, hashlib, pathlib, re, shutil, subprocess, sys, tarfile
from strawberry.http.ides import get_graphql_ide_html

work, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
html = get_graphql_ide_html(graphql_ide="graphiql")
found = re.findall(r'(?:src|href)="https://unpkg\.com/((@?[^@"]+)@([^/"]+)/([^"]+))"\s+integrity="([^"]+)"', html)
if not found:
    sys.exit("no unpkg assets found in strawberry's GraphiQL page")
dest.mkdir(parents=True, exist_ok=True)
for _full, name, version, path, integrity in found:
    tgz = subprocess.run(["npm", "pack", f"{name}@{version}", "--silent"], cwd=work,
                         check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    with tarfile.open(work / tgz) as tar:
        data = tar.extractfile(f"package/{path}").read()
        for member in ("package/LICENSE", "package/LICENSE.md"):
            try:
                lic = tar.extractfile(member).read()
            except KeyError:
                continue
            (dest / f"{name.replace('/', '-').lstrip('@')}.LICENSE").write_bytes(lic)
    algo, _, want = integrity.partition("-")
    got = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if got != want:
        sys.exit(f"{name}@{version}/{path}: integrity mismatch")
    out = dest / f"{name.replace('/', '-').lstrip('@')}-{version}-{pathlib.PurePosixPath(path).name}"
    out.write_bytes(data)
    print(f"{out} ({len(data)} bytes, {integrity[:20]}...)")
PY
