// nginx stub_status equivalents for the HTTP data plane (APISIX nginx_http_current_connections and
// http_requests_total), fed by diagnostics channels only:
// - node's `net.server.socket` (every accepted TCP connection of this process), counted per local port;
// - the pipeline's switchyard:http:request:start / :end (src/pipeline/channels.ts).
// Only ports on which the pipeline has served a request are reported, so connections to the Admin API, the
// exporter itself or in-process test upstreams do not count; a port's connections accepted before its first
// request are still counted (the per-port table keeps them). Per connection: one table lookup and one
// 'close' listener (a method bound once per port, no per-connection closure).
// States: writing = requests inside the pipeline; reading = 0 (node parses request heads before the pipeline
// sees them, so that state is not observable here); waiting = active - writing.
import diagnostics_channel from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { HTTP_REQUEST_END, HTTP_REQUEST_START } from '../pipeline/channels.ts';
import type { Transaction } from '../pipeline/transaction.ts';

class PortStats {
  accepted = 0;
  active = 0;
  readonly closed = (): void => {
    this.active--;
  };
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
  /**
   * Ports of listeners that never serve HTTP (the stream proxy's): their sockets get no 'close' listener, which
   * beside the stream splice's own would turn the socket's listener entry into an array (~250 bytes per
   * session, idle MQTT sessions live for hours).
   */
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
    s.active++;
    // 'close' fires once: `on` avoids the wrapper `once` allocates per connection.
    socket.on('close', s.closed);
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
    for (const port of this.httpPorts) {
      const s = this.ports.get(port);
      if (s === undefined) continue;
      accepted += s.accepted;
      active += s.active;
    }
    const writing = this.inFlight;
    return { accepted, handled: accepted, active, reading: 0, writing, waiting: Math.max(0, active - writing), requests: this.requests };
  }
}

export const httpStats = new HttpStats();
