#!/usr/bin/env bash
# Validate FHIR R4 JSON resources offline with HAPI FHIR's instance validator (jars from
# Maven Central; see README.md).
#
#   validate.sh FILE_OR_DIR ...   one JSON line per file; exit 1 if any file has an error
#   validate.sh --stdin           one path per line on stdin, one JSON line back per path
#                                 (one JVM for a whole test session)
#   validate.sh --prepare         only fetch the jars and compile (idempotent)
#
# Environment:
#   CARETEAM_FHIR_VALIDATOR_HEAP_OPTS   JVM heap flags, default "-Xms256m -Xmx1g"
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/pom.xml"
SRC="$HERE/src/Validate.java"
LIB_DIR="$HERE/target/lib"
LIB_STAMP="$LIB_DIR/.pom.sha256"
CLASSES="$HERE/target/classes"
CLASS_STAMP="$CLASSES/.src.sha256"
HEAP_OPTS="${CARETEAM_FHIR_VALIDATOR_HEAP_OPTS:--Xms256m -Xmx1g}"

log() { printf 'validate.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

need() {
  command -v "$1" >/dev/null || die "$1 not found: install Java 17 (JDK) and Maven, e.g. sudo apt-get install -y openjdk-17-jdk-headless maven"
}

# Materialise the classpath in target/lib. Maven runs only when the jars are missing or
# pom.xml changed; it downloads into ~/.m2 and copies from there (as deploy/kafka/kafka.sh).
fetch_jars() {
  local want
  want="$(sha256_of "$POM")"
  if [[ -f "$LIB_STAMP" && "$(cat "$LIB_STAMP")" == "$want" ]]; then
    return 0
  fi
  need mvn
  mkdir -p "$HERE/target"
  exec 8>"$HERE/target/.fetch.lock"
  flock 8
  if [[ -f "$LIB_STAMP" && "$(cat "$LIB_STAMP")" == "$want" ]]; then
    exec 8>&-
    return 0
  fi
  log "fetching HAPI FHIR jars with Maven (once; cached in ~/.m2 and $LIB_DIR)"
  local tmp="$HERE/target/lib.tmp.$$" mvn_log="$HERE/target/mvn.log"
  rm -rf "$tmp"
  if ! mvn -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >"$mvn_log" 2>&1; then
    tail -n 40 "$mvn_log" >&2
    rm -rf "$tmp"
    die "Maven could not fetch the HAPI FHIR jars (full output: $mvn_log)"
  fi
  echo "$want" >"$tmp/.pom.sha256"
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  exec 8>&-
}

# Compile the validator's main once per change of its source (or of the jars).
compile() {
  local want
  want="$(cat "$SRC" "$LIB_STAMP" | sha256sum | cut -d' ' -f1)"
  if [[ -f "$CLASS_STAMP" && "$(cat "$CLASS_STAMP")" == "$want" ]]; then
    return 0
  fi
  need javac
  exec 9>"$HERE/target/.compile.lock"
  flock 9
  if [[ -f "$CLASS_STAMP" && "$(cat "$CLASS_STAMP")" == "$want" ]]; then
    exec 9>&-
    return 0
  fi
  local tmp="$HERE/target/classes.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  javac -encoding UTF-8 -cp "$LIB_DIR/*" -d "$tmp" "$SRC" || { rm -rf "$tmp"; die "javac failed"; }
  echo "$want" >"$tmp/.src.sha256"
  rm -rf "$CLASSES"
  mv "$tmp" "$CLASSES"
  exec 9>&-
}

[[ $# -gt 0 ]] || die "usage: validate.sh --stdin | --prepare | FILE_OR_DIR ..."
need java
fetch_jars
compile
if [[ "$1" == "--prepare" ]]; then
  exit 0
fi
# shellcheck disable=SC2086
exec java $HEAP_OPTS -XX:+UseSerialGC -Djava.awt.headless=true \
  -Dorg.slf4j.simpleLogger.defaultLogLevel=error -Dorg.slf4j.simpleLogger.logFile=System.err \
  -cp "$CLASSES:$LIB_DIR/*" Validate "$@"
