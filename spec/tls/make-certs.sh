#!/bin/sh
# make-certs.sh DIR - a throwaway PKI for the TLS tests, made with the
# openssl CLI: a CA (ca.pem), a server pair for localhost and 127.0.0.1
# signed by it (server.pem, the chain; server.key), a second pair for
# the same names (server2.*), a pair for another name (other.*), a client
# pair (client.*), a CA nobody trusts with a pair of its own (rogue.*)
# and a broken key (broken.key).  Quick: EC keys; nothing is reused.
set -e
d=${1:?usage: make-certs.sh DIR}
mkdir -p "$d" && cd "$d"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
          -out "$1" 2>/dev/null; }
ca() {   # ca NAME SUBJECT
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 2 \
    -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign -out "$1.pem" 2>/dev/null
}
leaf() { # leaf NAME CA SAN [EKU]
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$1" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$3" \
    "${4:-serverAuth}" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" \
    -CAcreateserial -days 2 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  cat "$1.crt" "$2.pem" > "$1.pem"
  rm -f "$1.csr" "$1.ext"
}
ca ca "moonlet test CA"
ca rogue-ca "untrusted test CA"
leaf server ca "DNS:localhost,IP:127.0.0.1"
leaf server2 ca "DNS:localhost,IP:127.0.0.1"
leaf other ca "DNS:other.example"
leaf client ca "DNS:client" clientAuth
leaf rogue rogue-ca "DNS:localhost,IP:127.0.0.1"
printf -- '-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n' \
  > broken.key
