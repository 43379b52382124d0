// Reads the SNI of a TLS ClientHello from bytes peeked off a plain TCP connection (TLS passthrough routing).
// The bytes are not consumed: the whole ClientHello is forwarded to the upstream unchanged. The parser lives in
// src/tls/client-hello.ts, shared with the HTTPS listener (which picks its certificate from the same peek) and the
// QUIC listener (whose ClientHello arrives in CRYPTO frames, not TLS records).
// Also exported from here: the stream TLS peek and its fuzz target are one unit (test/fuzz/client-hello).
export { CLIENT_HELLO_MAX, looksLikeTls, parseClientHello, sniFromHandshake, type HelloResult } from '../../src/tls/client-hello.ts';
