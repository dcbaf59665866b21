'use strict';

const test = require('node:test');
const assert = require('node:assert');
const { greet } = require('../lib/greet');

test('greets the world by default', () => {
  assert.deepStrictEqual(greet(), { message: 'hello, world', app: 'node-app' });
});

test('greets by name, trimmed and bounded', () => {
  assert.strictEqual(greet('  ada ').message, 'hello, ada');
  assert.strictEqual(greet('x'.repeat(100)).message.length, 'hello, '.length + 64);
});
