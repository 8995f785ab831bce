package dev.recallstack.neo4j;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.cli.ExecutionContext;
import org.neo4j.commandline.admin.security.SetInitialPasswordCommand;
import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.internal.kernel.api.connectioninfo.ClientConnectionInfo;
import org.neo4j.internal.kernel.api.security.AuthenticationResult;
import org.neo4j.internal.kernel.api.security.LoginContext;
import org.neo4j.io.ByteUnit;
import org.neo4j.io.fs.DefaultFileSystemAbstraction;

import org.neo4j.kernel.api.security.AuthManager;
import org.neo4j.kernel.api.security.AuthToken;
import org.neo4j.kernel.internal.GraphDatabaseAPI;

import picocli.CommandLine;

/**
 * Runs Neo4j community (embedded DBMS) as a plain server process: Bolt only, authentication on.
 *
 * <pre>
 *   NEO4J_PASSWORD=... java [jvm flags] -jar neo4j-launcher.jar HOME
 * </pre>
 *
 * HOME holds everything the DBMS writes: data/ (stores, transaction logs, dbms/auth.ini on the
 * first start), logs/ (debug.log, neo4j.log). The environment decides the rest:
 * <ul>
 *   <li>NEO4J_PASSWORD (required, at least 8 characters): password of user neo4j. On the first
 *       start it is written with Neo4j's own {@code neo4j-admin dbms set-initial-password} before
 *       the system database exists, so no default password is ever live. On later starts it is
 *       re-applied ({@code ALTER USER neo4j SET PASSWORD ... CHANGE NOT REQUIRED}) before the
 *       ready line, so the variable stays the single source of truth.</li>
 *   <li>NEO4J_BOLT_LISTEN (default 127.0.0.1:7687)</li>
 *   <li>NEO4J_PAGECACHE (default 256m; any Neo4j byte size such as 128m or 1g)</li>
 *   <li>NEO4J_TX_MEMORY_MAX (default 256m): cap on memory used by all running transactions</li>
 * </ul>
 * Prints "neo4j ready on HOST:PORT (home H, startup N ms, P)" on stdout once Bolt accepts
 * authenticated sessions (P: "initial password set", "password checked" or "password reset"), and
 * "neo4j stopped" after a clean shutdown (SIGTERM/SIGINT run the shutdown hook). Exits 1 with a
 * "neo4j launcher: ..." message on stderr when it cannot start.
 */
public final class Neo4jLauncher {
    private static final String USER = "neo4j";
    private static final int MIN_PASSWORD_LENGTH = 8;

    private Neo4jLauncher() {}

    public static void main(String[] args) {
        try {
            run(args);
        } catch (LaunchError e) {
            System.err.println("neo4j launcher: " + e.getMessage());
            System.err.flush();
            // exit, not return: a started DBMS holds non-daemon threads. The shutdown hook (if the
            // DBMS got that far) closes it cleanly first.
            System.exit(1);
        } catch (Throwable e) {
            System.err.println("neo4j launcher: failed to start: " + e);
            e.printStackTrace(System.err);
            System.err.flush();
            System.exit(1);
        }
    }

    private static void run(String[] args) throws Exception {
        if (args.length != 1) {
            throw new LaunchError("usage: Neo4jLauncher HOME_DIR (env NEO4J_PASSWORD required)");
        }
        Path home = Path.of(args[0]).toAbsolutePath().normalize();
        String password = System.getenv("NEO4J_PASSWORD");
        if (password == null || password.isEmpty()) {
            throw new LaunchError("NEO4J_PASSWORD is not set; it must hold the password of user neo4j");
        }
        if (password.codePointCount(0, password.length()) < MIN_PASSWORD_LENGTH) {
            throw new LaunchError("NEO4J_PASSWORD is too short: Neo4j requires at least "
                    + MIN_PASSWORD_LENGTH + " characters");
        }
        SocketAddress bolt = parseAddress(env("NEO4J_BOLT_LISTEN", "127.0.0.1:7687"));
        long pageCache = parseBytes("NEO4J_PAGECACHE", env("NEO4J_PAGECACHE", "256m"));
        long txMemory = parseBytes("NEO4J_TX_MEMORY_MAX", env("NEO4J_TX_MEMORY_MAX", "256m"));

        // Bolt binds only after both databases have started (5-25 s here): fail fast instead.
        checkPortFree(bolt);
        Files.createDirectories(home);
        boolean firstStart = !Files.isDirectory(home.resolve("data").resolve("databases").resolve("system"));
        if (firstStart) {
            setInitialPassword(home, password);
        }

        long t0 = System.nanoTime();
        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, bolt)
                .setConfig(BoltConnector.advertised_address, bolt)
                .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                .setConfig(HttpConnector.enabled, false)
                .setConfig(HttpsConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                .setConfig(GraphDatabaseSettings.pagecache_memory, pageCache)
                .setConfig(GraphDatabaseSettings.memory_transaction_global_max_size, txMemory)
                // No usage reports to neo4j.com (there is no internet here anyway).
                .setConfig(GraphDatabaseSettings.udc_enabled, false)
                // Do not reserve 256 MiB per transaction log file up front (two databases per home).
                .setConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
                // Bolt's Netty event loops otherwise wait a 5 s quiet period each (two loops: 10 s)
                // on shutdown, after the databases are already closed.
                .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 0)
                .build();

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            long s0 = System.nanoTime();
            try {
                dbms.shutdown();
                System.out.printf("neo4j stopped (shutdown took %d ms)%n", (System.nanoTime() - s0) / 1_000_000);
            } catch (Throwable e) {
                System.err.println("neo4j launcher: shutdown failed: " + e);
            } finally {
                System.out.flush();
                stopped.countDown();
            }
        }, "neo4j-shutdown"));

        GraphDatabaseService db = dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME);
        if (!db.isAvailable(Duration.ofMinutes(2).toMillis())) {
            throw new LaunchError("database " + GraphDatabaseSettings.DEFAULT_DATABASE_NAME
                    + " did not become available; see " + home.resolve("logs/debug.log"));
        }
        String passwordState = firstStart ? "initial password set" : syncPassword(dbms, password);
        System.out.printf("neo4j ready on %s:%d (home %s, startup %d ms, %s)%n",
                bolt.getHostname(), bolt.getPort(), home, (System.nanoTime() - t0) / 1_000_000, passwordState);
        System.out.flush();
        stopped.await();
    }

    /** What {@code neo4j-admin dbms set-initial-password} does: writes HOME/data/dbms/auth.ini. */
    private static void setInitialPassword(Path home, String password) throws LaunchError {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        PrintStream ps = new PrintStream(out, true, StandardCharsets.UTF_8);
        int rc;
        try (DefaultFileSystemAbstraction fs = new DefaultFileSystemAbstraction()) {
            ExecutionContext ctx = new ExecutionContext(home, home.resolve("conf"), ps, ps, fs);
            // "--" ends the options: a password that starts with '-' is a password, not a flag
            rc = new CommandLine(new SetInitialPasswordCommand(ctx)).execute("--", password);
        }
        if (rc != 0) {
            throw new LaunchError("setting the initial password failed: " + out.toString(StandardCharsets.UTF_8).trim());
        }
    }

    /**
     * Re-apply NEO4J_PASSWORD on an existing home. A login check through the DBMS's own
     * AuthManager costs milliseconds; only on a mismatch is Cypher used (ALTER USER), because the
     * first Cypher statement in a fresh JVM takes 5-10 s to plan on this machine.
     */
    private static String syncPassword(DatabaseManagementService dbms, String password) throws LaunchError {
        GraphDatabaseService system = dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME);
        try {
            AuthManager auth = ((GraphDatabaseAPI) system).getDependencyResolver().resolveDependency(AuthManager.class);
            LoginContext login = auth.login(
                    new HashMap<>(AuthToken.newBasicAuthToken(USER, password)), ClientConnectionInfo.EMBEDDED_CONNECTION);
            if (login.subject().getAuthenticationResult() == AuthenticationResult.SUCCESS) {
                return "password checked";
            }
        } catch (Exception | LinkageError e) {
            // Internal API; fall back to the Cypher path, which always works.
            System.err.println("neo4j launcher: login check unavailable (" + e + "); applying NEO4J_PASSWORD with ALTER USER");
        }
        try {
            system.executeTransactionally(
                    "ALTER USER " + USER + " SET PASSWORD $password CHANGE NOT REQUIRED",
                    Map.of("password", password));
            System.out.println("neo4j launcher: password of user neo4j reset from NEO4J_PASSWORD");
            return "password reset";
        } catch (RuntimeException e) {
            String message = String.valueOf(e.getMessage());
            if (message.contains("Old password and new password cannot be the same")) {
                return "password unchanged";
            }
            throw new LaunchError("could not apply NEO4J_PASSWORD to user neo4j: " + message);
        }
    }

    private static void checkPortFree(SocketAddress address) throws LaunchError {
        try (ServerSocket socket = new ServerSocket()) {
            socket.setReuseAddress(true);
            socket.bind(new InetSocketAddress(address.getHostname(), address.getPort()));
        } catch (IOException e) {
            throw new LaunchError("cannot listen on " + address + " (NEO4J_BOLT_LISTEN): " + e.getMessage()
                    + "; is another Neo4j already running there?");
        }
    }

    private static String env(String name, String fallback) {
        String value = System.getenv(name);
        return value == null || value.isBlank() ? fallback : value.trim();
    }

    private static SocketAddress parseAddress(String value) throws LaunchError {
        int colon = value.lastIndexOf(':');
        try {
            return new SocketAddress(value.substring(0, colon), Integer.parseInt(value.substring(colon + 1)));
        } catch (RuntimeException e) {
            throw new LaunchError("NEO4J_BOLT_LISTEN must be HOST:PORT, got '" + value + "'");
        }
    }

    private static long parseBytes(String name, String value) throws LaunchError {
        try {
            return ByteUnit.parse(value);
        } catch (RuntimeException e) {
            throw new LaunchError(name + " must be a byte size such as 256m or 1g, got '" + value + "'");
        }
    }

    private static final class LaunchError extends Exception {
        LaunchError(String message) {
            super(message);
        }
    }
}
