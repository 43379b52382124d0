// Stream (L4) protocol entry points for the composition root.
export { createStreamListeners, type StreamListeners, type StreamListenersOptions, type StreamAddress } from './listeners.ts';
export { parseStreamProxyConf, type StreamProxyConf, type TcpListenSpec, type UdpListenSpec, type ParseStreamOptions } from './conf.ts';
export { DEFAULT_TIMEOUTS, type StreamTimeouts } from './options.ts';
