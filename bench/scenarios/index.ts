// The scenario registry, in run order. One file per scenario; add a scenario by adding it here.
import type { Scenario } from '../lib/types.ts';
import { configPropagation } from './config-propagation.ts';
import { dubbo } from './dubbo.ts';
import { http10kRoutes } from './http-10k-routes.ts';
import { grpc } from './grpc.ts';
import { http1Route } from './http-1route.ts';
import { httpAb } from './http-ab.ts';
import { httpEngines } from './http-engines.ts';
import { https1Route } from './https-1route.ts';
import { http3 } from './http3.ts';
import { httpPlugins } from './http-plugins.ts';
import { memory } from './memory.ts';
import { micro } from './micro.ts';
import { tcpStream } from './tcp-stream.ts';

export const SCENARIOS: readonly Scenario[] = [http1Route, httpAb, httpEngines, https1Route, http3, httpPlugins, http10kRoutes, tcpStream, grpc, dubbo, configPropagation, memory, micro];
