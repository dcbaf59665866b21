console.log("web on", process.env.PORT);
