'use strict';

// greet builds the answer of GET /: a greeting for `name` (default "world").
function greet(name) {
  const who = String(name || 'world').trim().slice(0, 64) || 'world';
  return { message: `hello, ${who}`, app: 'node-app' };
}

module.exports = { greet };
