// gRPC upstream of the grpc bench scenario: the swytest.Echo @grpc/grpc-js server of the tests
// (test/helpers/grpc.ts). `node bench/peers/grpc-echo.ts <port>`; prints "listening" when bound.
import { startGrpcUpstream } from '../../test/helpers/grpc.ts';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: grpc-echo.ts <port>');
  process.exit(2);
}
const up = await startGrpcUpstream({ port });
console.log('listening', up.port);
process.once('SIGTERM', () => void up.close().then(() => process.exit(0)));
