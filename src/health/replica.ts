// Worker-side health state in cluster mode: HealthTables fed by the primary's broadcasts (ipc.ts), and
// passive outcomes forwarded to the primary, which owns the checkers and counters. To keep IPC off the
// common path, a worker forwards failures (statuses in passive.unhealthy.http_statuses, failed attempts) and
// only those successes that matter: the first one after a failure it forwarded (it resets the consecutive
// failure count) and any on an endpoint currently unhealthy (passive recovery). Successes seen by another
// worker do not reset a count started by this one, so counts are "consecutive" per worker.
import type { JsonObject } from '../config/resources.ts';
import { ALL_HEALTHY, type HealthView } from '../upstream/balancer.ts';
import { healthConfOf, type PassiveConf } from './conf.ts';
import type { HealthService } from './manager.ts';
import { HealthTable } from './state.ts';

export type HealthMessage =
  | { type: 'health'; key: string; endpoint: string; healthy: boolean }
  | { type: 'health-state'; state: [string, string[]][] }
  | { type: 'health-drop'; key: string };

export type WorkerHealthMessage =
  | { type: 'health-hello' }
  | { type: 'health-report'; key: string; endpoint: string; status?: number; kind?: string };

interface Slot {
  readonly table: HealthTable;
  passive: PassiveConf | null;
  /** Endpoints with a forwarded failure not yet followed by a forwarded success. */
  readonly dirty: Set<string>;
}

export class HealthReplica implements HealthService {
  private readonly slots = new Map<string, Slot>();
  private readonly send: (msg: WorkerHealthMessage) => void;

  constructor(send: (msg: WorkerHealthMessage) => void) {
    this.send = send;
  }

  /** Asks the primary for the full state (call once the message handler is attached). */
  hello(): void {
    this.send({ type: 'health-hello' });
  }

  view(key: string, conf: JsonObject): HealthView {
    if (conf.checks === undefined) return ALL_HEALTHY;
    const slot = this.slot(key);
    slot.passive = healthConfOf(conf)?.passive ?? null;
    return slot.table;
  }

  reportStatus(key: string, endpointKey: string, status: number): void {
    // hot path
    const slot = this.slots.get(key);
    const p = slot?.passive;
    if (slot === undefined || p === null || p === undefined) return;
    if (p.unhealthy.statuses.has(status)) {
      slot.dirty.add(endpointKey);
      this.send({ type: 'health-report', key, endpoint: endpointKey, status });
    } else if (p.healthy.statuses.has(status) && (slot.dirty.delete(endpointKey) || !slot.table.isHealthy(endpointKey))) {
      this.send({ type: 'health-report', key, endpoint: endpointKey, status });
    }
  }

  reportFailure(key: string, endpointKey: string, kind: string): void {
    const slot = this.slots.get(key);
    if (slot === undefined || slot.passive === null) return;
    slot.dirty.add(endpointKey);
    this.send({ type: 'health-report', key, endpoint: endpointKey, kind });
  }

  /** Applies a primary message; false when `msg` is not a health message. */
  handle(msg: unknown): boolean {
    const m = msg as HealthMessage | null;
    if (m === null || typeof m !== 'object') return false;
    switch (m.type) {
      case 'health':
        this.slot(m.key).table.set(m.endpoint, m.healthy);
        return true;
      case 'health-state': {
        const seen = new Set<string>();
        for (const [key, down] of m.state) {
          seen.add(key);
          this.slot(key).table.replace(down);
        }
        for (const [key, s] of this.slots) if (!seen.has(key)) s.table.replace([]);
        return true;
      }
      case 'health-drop': {
        const s = this.slots.get(m.key);
        s?.table.replace([]);
        this.slots.delete(m.key);
        return true;
      }
      default:
        return false;
    }
  }

  private slot(key: string): Slot {
    let s = this.slots.get(key);
    if (s === undefined) {
      s = { table: new HealthTable(), passive: null, dirty: new Set() };
      this.slots.set(key, s);
    }
    return s;
  }
}
