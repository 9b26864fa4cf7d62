/** Debian's OpenSSH server for interop tests: a private sshd on loopback with fresh keys. */
import { portForChild } from "./_helpers.ts";

/** OpenSSH's sshd on 127.0.0.1 with a fresh host key, accepting one user key. */
export async function openssh(): Promise<
  { port: number; key: string; badKey: string; log: () => string; stop: () => Promise<void> }
> {
  const dir = await Deno.makeTempDir();
  const keygen = (path: string) =>
    new Deno.Command("ssh-keygen", {
      args: ["-q", "-t", "ed25519", "-N", "", "-f", path],
      stdout: "null",
      stderr: "null",
    }).output();
  await keygen(`${dir}/host`);
  await keygen(`${dir}/user`);
  await keygen(`${dir}/other`);
  await Deno.copyFile(`${dir}/user.pub`, `${dir}/authorized_keys`);
  await Deno.mkdir("/run/sshd", { recursive: true }).catch(() => {});
  const port = portForChild(); // sshd cannot be handed a socket: a port for its listen flag
  await Deno.writeTextFile(
    `${dir}/sshd_config`,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${dir}/host`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      "PasswordAuthentication no",
      "PermitRootLogin prohibit-password",
      "AllowTcpForwarding yes",
      "StrictModes no",
      "UsePAM no",
      "PidFile none",
    ].join("\n") + "\n",
  );
  const child = new Deno.Command("/usr/sbin/sshd", {
    args: ["-D", "-e", "-f", `${dir}/sshd_config`],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  // sshd's per-connection children inherit stderr: the reader is cancelled, not waited for.
  const reader = child.stderr.getReader();
  const reading = (async () => {
    const dec = new TextDecoder();
    for (;;) {
      const r = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (r.done) return;
      log += dec.decode(r.value, { stream: true });
    }
  })();
  for (let i = 0; i < 100; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    port,
    key: `${dir}/user`,
    badKey: `${dir}/other`,
    log: () => log,
    stop: async () => {
      child.kill("SIGTERM");
      await child.status;
      await reader.cancel().catch(() => {});
      await reading;
      await Deno.remove(dir, { recursive: true });
    },
  };
}
