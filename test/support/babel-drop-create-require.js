// Jest-only: ESM packages (e.g. @nestjs/swagger) declare `const require = createRequire(import.meta.url)`.
// Once Babel turns their imports into require() calls, that local binding shadows CommonJS's own
// require and is used before it is initialised. In CommonJS the real `require` is already there,
// so the declaration is dropped.
module.exports = function dropCreateRequire() {
  return {
    name: 'drop-create-require',
    visitor: {
      VariableDeclarator(path) {
        const { id, init } = path.node;
        if (
          id.type === 'Identifier' &&
          id.name === 'require' &&
          init &&
          init.type === 'CallExpression' &&
          init.callee.type === 'Identifier' &&
          init.callee.name === 'createRequire'
        ) {
          path.remove();
        }
      },
    },
  };
};
