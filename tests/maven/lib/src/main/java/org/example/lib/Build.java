package org.example.lib;

import java.io.IOException;
import java.io.InputStream;
import java.util.Properties;

public final class Build {
    private Build() {}

    public static String tag() throws IOException {
        Properties properties = new Properties();
        try (InputStream in = Build.class.getResourceAsStream("/org/example/lib/build.properties")) {
            properties.load(in);
        }
        return properties.getProperty("build");
    }
}
