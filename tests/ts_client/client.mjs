// The official TypeScript SDK, used as its README shows, against whatever ANTHROPIC_BASE_URL points at
// (tests/test_serve_typescript.py points it at `mas serve`). Nothing here knows the server is not the API.
//
//   node client.mjs SYSTEM_PROMPT USER_MESSAGE
//
// Prints one JSON line: what each call got back, for the Python test to compare with the Python SDK's.
import Anthropic from '@anthropic-ai/sdk';

const [system, task] = process.argv.slice(2);
const client = new Anthropic(); // ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL from the environment
const request = {
  model: 'claude-opus-4-6',
  max_tokens: 1500,
  system,
  messages: [{ role: 'user', content: task }],
};

const message = await client.messages.create(request);
const text = message.content[0].text;

const deltas = [];
const stream = client.messages.stream(request).on('text', (delta) => deltas.push(delta));
const final = await stream.finalMessage();

const count = await client.messages.countTokens({ model: request.model, system, messages: request.messages });

const models = [];
for await (const model of client.models.list()) {
  models.push(model.id);
}

console.log(JSON.stringify({
  create_text: text,
  create_first_line: text.split('\n')[0],
  stop_reason: message.stop_reason,
  stream_text: deltas.join(''),
  stream_text_equals_final: deltas.join('') === final.content[0].text,
  stream_output_tokens: final.usage.output_tokens,
  count_tokens: count.input_tokens,
  models,
}));
