// Import this module first in every script that loads js-waku: @waku/sdk 0.0.36 and its libp2p
// call Promise.withResolvers, which Node.js 20 (Debian's) lacks.
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
