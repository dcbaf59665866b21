const greet = require("greet");
console.log(greet("web"), "on", process.env.PORT);
