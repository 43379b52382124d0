// The browser of the openid-connect tests: keeps cookies per origin and follows redirects by hand.

/** A cookie-keeping client that follows redirects across the gateway and the OP (cookies kept per origin). */
export class Browser {
  readonly jars = new Map<string, Map<string, string>>();

  jar(url: string): Map<string, string> {
    const origin = new URL(url).origin;
    let j = this.jars.get(origin);
    if (!j) this.jars.set(origin, (j = new Map()));
    return j;
  }

  async get(url: string): Promise<Response> {
    const j = this.jar(url);
    const r = await fetch(url, { redirect: 'manual', headers: { cookie: [...j].map(([k, v]) => `${k}=${v}`).join('; ') } });
    for (const c of r.headers.getSetCookie()) {
      const [kv, ...attrs] = c.split(';');
      const eq = kv!.indexOf('=');
      const name = kv!.slice(0, eq).trim();
      const value = kv!.slice(eq + 1);
      const expired = attrs.some((a) => /^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]!) <= Date.now());
      if (value === '' || expired) j.delete(name);
      else j.set(name, value);
    }
    return r;
  }

  /** Follows redirects (at most 12 hops); returns the final response and the visited URLs. */
  async follow(url: string): Promise<{ res: Response; hops: string[] }> {
    const hops = [url];
    let r = await this.get(url);
    for (let i = 0; i < 12 && r.status >= 300 && r.status < 400; i++) {
      await r.arrayBuffer();
      url = new URL(r.headers.get('location')!, url).toString();
      hops.push(url);
      r = await this.get(url);
    }
    return { res: r, hops };
  }
}
