import { pipe } from "../../src/core/pipe.ts";
import { TcpListener } from "../../src/transport/tcp/listener.ts";
import { dialTcp } from "../../src/core/socket.ts";
import { runConnSuite } from "../conformance/conn_suite.ts";

runConnSuite("pipe", () => {
  const [a, b] = pipe();
  return Promise.resolve({ a, b });
}, { maxBuffered: 1 << 20 });

runConnSuite("tcp", async () => {
  const l = TcpListener.listen("127.0.0.1:0");
  const [a, b] = await Promise.all([dialTcp("127.0.0.1", l.addr.port), l.accept()]);
  await l.close();
  return { a, b: b! };
});
