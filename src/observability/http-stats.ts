// nginx stub_status equivalents for the HTTP data plane (APISIX nginx_http_current_connections and
// http_requests_total), fed by diagnostics channels only:
// - node's `net.server.socket` (every accepted TCP connection of this process), counted per local port;
// - the pipeline's switchyard:http:request:start / :end (src/pipeline/channels.ts).
// Only ports on which the pipeline has served a request are reported, so connections to the Admin API, the
// exporter itself or in-process test upstreams do not count; a port's connections accepted before its first
// request are still counted (the per-port table keeps them). Per connection: one table lookup and a set
// lookup of its server; nothing is attached to the socket (a 'close' listener beside the engine's own turned the
// socket's listener entry into an array: about 100 bytes of heap per idle keep-alive connection). Open
// connections are read at scrape time from the servers that accepted them.
// States: writing = requests inside the pipeline; reading = 0 (node parses request heads before the pipeline
// sees them, so that state is not observable here); waiting = active - writing.
import diagnostics_channel from 'node:diagnostics_channel';
import type { Server, Socket } from 'node:net';
import { HTTP_REQUEST_END, HTTP_REQUEST_START } from '../pipeline/channels.ts';
import type { Transaction } from '../pipeline/transaction.ts';

/**
 * `_connections` is the count net.Server keeps of its accepted sockets not yet closed, the one getConnections()
 * answers (a callback on the next tick, while scrapes read the view synchronously).
 */
type CountingServer = Server & { _connections: number };

class PortStats {
  accepted = 0;
  /** Servers that accepted connections on this port (one per listener; a reload may add one). */
  readonly servers = new Set<CountingServer>();

  active(): number {
    let n = 0;
    for (const server of this.servers) {
      const open = server._connections;
      if (open === 0 && !server.listening) this.servers.delete(server);
      n += open;
    }
    return n;
  }
}

export interface HttpStatsView {
  accepted: number;
  handled: number;
  active: number;
  reading: number;
  writing: number;
  waiting: number;
  requests: number;
}

class HttpStats {
  private readonly ports = new Map<number, PortStats>();
  private readonly httpPorts = new Set<number>();
  /** Ports of listeners that never serve HTTP (the stream proxy's): neither counted nor their servers held. */
  private readonly otherPorts = new Set<number>();
  requests = 0;
  inFlight = 0;
  private started = false;

  start(): void {
    if (this.started) return;
    this.started = true;
    diagnostics_channel.subscribe('net.server.socket', this.onSocket);
    diagnostics_channel.subscribe(HTTP_REQUEST_START, this.onStart);
    diagnostics_channel.subscribe(HTTP_REQUEST_END, this.onEnd);
  }

  private readonly onSocket = (msg: unknown): void => {
    const socket = (msg as { socket: Socket }).socket;
    const port = socket.localPort;
    if (port === undefined || this.otherPorts.has(port)) return;
    let s = this.ports.get(port);
    if (s === undefined) {
      s = new PortStats();
      this.ports.set(port, s);
    }
    s.accepted++;
    const server = (socket as Socket & { server: CountingServer }).server;
    s.servers.add(server);
  };

  private readonly onStart = (msg: unknown): void => {
    this.requests++;
    this.inFlight++;
    const port = (msg as Transaction).req.serverPort;
    if (!this.httpPorts.has(port)) this.httpPorts.add(port);
  };

  private readonly onEnd = (): void => {
    if (this.inFlight > 0) this.inFlight--;
  };

  /** A listener that never serves HTTP is bound to `port` (until it is closed: notHttpPortEnd). */
  notHttpPort(port: number): void {
    this.otherPorts.add(port);
  }

  notHttpPortEnd(port: number): void {
    this.otherPorts.delete(port);
  }

  view(): HttpStatsView {
    let accepted = 0;
    let active = 0;
    // Every port's servers are read, so closed listeners leave the sets of ports not reported too.
    for (const [port, s] of this.ports) {
      const open = s.active();
      if (!this.httpPorts.has(port)) continue;
      accepted += s.accepted;
      active += open;
    }
    const writing = this.inFlight;
    return { accepted, handled: accepted, active, reading: 0, writing, waiting: Math.max(0, active - writing), requests: this.requests };
  }
}

export const httpStats = new HttpStats();
