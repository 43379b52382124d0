// Socket writes of one event-loop turn leave together. A write to a loopback or LAN peer that sleeps in epoll
// wakes it (on a VM an IPI, which the writer pays, in a profile more than the write itself); a proxy that writes
// each answer as soon as it has it wakes its client and its upstream once per request, a proxy that writes them
// at the end of the turn wakes each of them once per turn. The first write of a turn corks the socket and
// the socket joins a list; one setImmediate (the check phase, right after the poll phase's reads were all
// handled) uncorks them all. Nothing per request: a counter check, a push, one immediate per turn. At low load
// a turn holds one request and nothing waits.
//
// A socket counts as held while it is corked: the code that writes through here corks and uncorks only in
// balanced pairs within one call, so between such calls a corked socket is one held for this turn.
import type { Duplex } from 'node:stream';

const held: Duplex[] = [];

/** Call before writing: the socket stays corked until the end of this event-loop turn. */
export function holdWrites(s: Duplex): void {
  if (s.writableCorked > 0) return;
  s.cork();
  if (held.length === 0) setImmediate(releaseAll);
  held.push(s);
}

/** Sends what is held now (the socket is handed to something that writes on its own, e.g. a tunnel). */
export function releaseWrites(s: Duplex): void {
  if (s.writableCorked > 0 && !s.destroyed) s.uncork();
}

function releaseAll(): void {
  // An uncork may run callbacks that hold again: those join this pass.
  for (let i = 0; i < held.length; i++) releaseWrites(held[i]!);
  held.length = 0;
}
