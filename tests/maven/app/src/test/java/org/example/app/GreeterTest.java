package org.example.app;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class GreeterTest {
    @Test
    void greetsByName() {
        assertEquals("Hello, Maven!", Greeter.greet("maven"));
        assertEquals("Hello, World!", Greeter.greet(" "));
    }
}
