// Every test is held to the coverage of the sources of the package it tests, whichever of them it
// loads: the plugin's (lib/) or the verify command's (verify/src/). The compiled copies that the
// example-app and package tests run (dist/) are not sources.
export default (test) => test.startsWith('verify/') ? ['verify/src/**/*.ts'] : ['lib/**/*.ts']
