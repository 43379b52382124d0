// A real mosquitto broker on a random loopback port (anonymous, no persistence), stopped by pid.
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { freePort } from './ports.ts';
import { startPeer, tempDir, waitFor, type Peer } from './proc.ts';

export interface Mosquitto {
  readonly port: number;
  readonly peer: Peer;
  stop(): Promise<void>;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startMosquitto(): Promise<Mosquitto> {
  const tmp = await tempDir('swy-mosquitto-');
  const port = await freePort();
  const conf = path.join(tmp.dir, 'mosquitto.conf');
  await writeFile(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'log_dest stderr', ''].join('\n'));
  const peer = startPeer('mosquitto', ['-c', conf]);
  try {
    await waitFor(() => canConnect(port), 10_000);
  } catch (err) {
    await peer.stop();
    await tmp.cleanup();
    throw new Error(`mosquitto did not start: ${String(err)}\n${peer.output()}`);
  }
  return {
    port,
    peer,
    stop: async () => {
      await peer.stop();
      await tmp.cleanup();
    },
  };
}
