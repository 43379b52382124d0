// The contract between the protocol-neutral HTTP pipeline and the protocol adapters (node:http for HTTP/1.1,
// node:http2 for h2c and h2 over TLS, HTTP/3 over QUIC, a socket-level HTTP/1.1 codec). An adapter turns the
// client's request into a PipelineRequest plus a Downstream and calls HttpPipeline.handle(); the pipeline
// drives every phase and writes the answer through the Downstream. Nothing here names node:http.
import type { Duplex, Readable } from 'node:stream';
import type { HeaderMap } from '../plugin/context.ts';

/** What the TLS layer established for this request's connection (null on cleartext). */
export interface TlsInfo {
  /** SNI the client sent ('' when none). */
  readonly servername: string;
  /** `TLSv1.3`, ... */
  readonly protocol: string;
  readonly cipher: string;
  /**
   * Client certificate verification (mTLS per SSL object): NONE when the SSL object asks for none,
   * SUCCESS, or FAILED:<reason> as nginx's $ssl_client_verify.
   */
  readonly clientVerify: string;
  /** Subject / issuer DN and serial of the client certificate, when one was presented. */
  readonly clientSubject: string;
  readonly clientIssuer: string;
  readonly clientSerial: string;
  /** The SSL object that served the handshake (its client.skip_mtls_uri_regex applies per request). */
  readonly sslId: string;
  /** Requests whose path matches may proceed without a verified client certificate. */
  readonly skipMtls: ((path: string) => boolean) | null;
  /** The connection asked for a client certificate and must have a verified one unless skipMtls matches. */
  readonly mtlsRequired: boolean;
}

export interface PipelineRequest {
  readonly method: string;
  /** The request-target exactly as received (origin-form `/a?b`, or absolute-form on HTTP/1.1). */
  readonly target: string;
  /**
   * The authority: Host (HTTP/1.x) or :authority (h2, h3). '' when absent and allowed (HTTP/1.0); null when
   * the adapter found it invalid (duplicate Host, none on HTTP/1.1): the pipeline answers 400.
   */
  readonly authority: string | null;
  /** Lower-cased names, owned by this request: plugins edit them in place. */
  readonly headers: HeaderMap;
  /** '1.0', '1.1', '2.0', '3'. */
  readonly httpVersion: string;
  readonly remoteAddr: string;
  readonly remotePort: number;
  readonly serverAddr: string;
  readonly serverPort: number;
  readonly tls: TlsInfo | null;
  /** The request body as a stream (consumed once), or null when the request has none. */
  readonly body: Readable | null;
  /** An HTTP/1.1 Upgrade (WebSocket) request whose connection can be taken over (Downstream.takeover). */
  readonly upgrade: boolean;
}

/** The pipeline's single listener on a Downstream: methods on a per-request object, no closures. */
export interface DownstreamEvents {
  /** The client can take more data after data() returned false. */
  onDrain(): void;
  /** The client went away (or the exchange finished): an unfinished upstream exchange must be cancelled. */
  onClose(): void;
}

/** The client side of one exchange. */
export interface Downstream {
  /** Sends the response head. Framing (content-length, chunked, DATA frames) is the adapter's business. */
  head(status: number, headers: HeaderMap): void;
  /**
   * An adapter may hold the head back to send it with the first body bytes or the end; the pipeline calls
   * flush() once the synchronous part of a response is written, so a head whose body is still to come leaves.
   */
  flush?(): void;
  /** Writes body bytes; false asks the caller to wait for onDrain(). */
  data(chunk: Buffer): boolean;
  /** Ends the response; trailers go out where the protocol carries them (HTTP/1.1 chunked, h2, h3). */
  end(trailers: Record<string, string> | null): void;
  /** Tears the exchange down (socket destroy, RST_STREAM): the client must not take a cut body as complete. */
  abort(): void;
  readonly headSent: boolean;
  /** Registers the listener (once per exchange). */
  listen(events: DownstreamEvents): void;
  /**
   * Upgrades only: the raw client connection and the bytes already read past the request head. After this the
   * Downstream is no longer used for the body; head() may still be called first to send the 101.
   */
  takeover?(): { socket: Duplex; head: Buffer } | null;
}
