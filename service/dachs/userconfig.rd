<!-- epnml's DaCHS site configuration: DaCHS' default userconfig.rd (Debian
     gavodachs2-server 2.7) with the TAP examples and epnml's DataLink redirect
     filled in. DaCHS reads it from <rootDir>/etc/userconfig.rd, where
     service/provision.sh renders it (@API_URL@ = the settings' api_url). -->
<resource schema="__system">


<!-- ================================ Obscore ===================== -->

	<STREAM id="obscore-extraevents">
		<doc><![CDATA[
			Write extra events to mix into obscore-published tables.  This
			will almost always be just additions to the obscore clause of
			looking roughly like::
				
				<property name="obscoreClause" cumulate="True">
					,
					CAST(\\\\plutoLong AS real) AS pluto_long,
					CAST(\\\\plutoLat AS real) AS pluto_lat
				</property>

			See also `Extending Obscore`_ in the reference manual.
		]]></doc>
	</STREAM>

	<STREAM id="obscore-extrapars">
		<doc><![CDATA[
			For each macro you reference in obscore-extraevents, add a
			mixinPar here, like:

				<mixinPar key="plutoLong">NULL</mixinPar>
			
			Note that all mixinPars here must have default (i.e., there must
			be some content in the element suitable as an SQL expression
			of the appropriate type).  If you fail to give one, the creation
			of the empty prototype obscore table will fail with fairly obscure
			error messages.
		]]></doc>
	</STREAM>

	<STREAM id="obscore-extracolumns">
		<doc>
			Add column definitions for obscore here.  See `Extending Obscore`_ for
			details.
		</doc>
	</STREAM>

	<rowmaker id="_test-rmk">
		<!-- test instrumentation -->
		<map key="foo">@bar</map>
	</rowmaker>


<!-- ================================ Registry Interface ============ -->

	<STREAM id="registry-interfacerecords">
		<doc>
			These are services and registry records for the registry interface
			of this service.

			Even if together with defaultmeta, this will just work, keep 
			these elements in your etc/userconfig.rd.

			The metaString macros in here generally point into defaultmeta.
			Replace them with whatever actual text applies to your site;  we
			will work to do away with defaultmeta.txt.
		</doc>

		<resRec id="authority">
			<meta>
				resType: authority
				creationDate: \metaString{authority.creationDate}
				title: \\metaString{authority.title}{UNCONFIGURED}
				shortName: \\metaString{authority.shortName}
				subject: Authority
				managingOrg: \\metaString{publisher}
				referenceURL: \\metaString{authority.referenceURL}{UNCONFIGURED}
				identifier: ivo://\getConfig{ivoa}{authority}
				sets: ivo_managed
			</meta>
			<meta name="description">
				\\metaString{authority.description}{UNCONFIGURED}
			</meta>
		</resRec>

		<service id="registry" allowed="pubreg.xml">
			<registryCore/>
			<publish render="pubreg.xml" sets="ivo_managed">
				<meta name="accessURL"
					>\getConfig{web}{serverURL}\getConfig{web}{nevowRoot}oai.xml</meta>
			</publish>
			<meta name="resType">registry</meta>
			<meta name="title">\getConfig{web}{sitename} Registry</meta>
			<meta name="creationDate">\metaString{authority.creationDate}</meta>
			<meta name="description">
				The publishing registry for the \getConfig{web}{sitename}.
			</meta>
			<meta name="subject">virtual-observatories</meta>
			<meta name="shortName">\\metaString{authority.shortName} RG</meta>
			<meta name="content.type">Archive</meta>
			<meta name="harvest.description">The harvesting interface for 
				the publishing registry of the \getConfig{web}{sitename}</meta>
			<meta name="maxRecords">10000</meta>
			<meta name="managedAuthority">\getConfig{ivoa}{authority}</meta>

		</service>
	</STREAM>

<!-- ============================= DataLink ===================== -->

	<STREAM id="epnml-datalink">
		<doc>
			The DataLink service each epnml family RD declares on its epn_core
			table (``_associatedDatalinkService``), so that every TAP response
			carries a DataLink service descriptor (RESOURCE utype adhoc:service)
			bound to granule_uid.  The DataLink documents are written by epnml's
			HTTP service (``epnml serve``, the settings' api_url, rendered here
			by service/provision.sh as @API_URL@); this endpoint answers every
			request with a 303 redirect to ``api_url/datalink?ID=...``, the URL
			each row's datalink_url holds.  Clients (pyvo's iter_datalinks,
			TOPCAT's DataLink action) follow the redirect.  pyvo posts all IDs
			of a result at once: the redirect carries the first maxIDs of them,
			the client asks again for the rest.
		</doc>
		<service id="dl" allowed="dlmeta">
			<meta name="title">epnml DataLink (redirect to the epnml HTTP service)</meta>
			<meta name="description">DataLink documents of the rows of this
				table: the product's source, its preview, the re-inference
				service (#proc) and the model card.  Served by epnml's HTTP
				service; this endpoint redirects there.</meta>
			<datalinkCore>
				<descriptorGenerator>
					<setup imports="urllib.parse, gavo.svcs">
						<par key="apiURL">"@API_URL@"</par>
						<par key="maxIDs">50</par>
					</setup>
					<code>
						ids = args.get("ID") or [pubDID]
						if isinstance(ids, str):
							ids = [ids]
						query = urllib.parse.urlencode([("ID", i) for i in ids[:maxIDs]])
						raise svcs.SeeOther(apiURL.rstrip("/") + "/datalink?" + query)
					</code>
				</descriptorGenerator>
			</datalinkCore>
		</service>
	</STREAM>

<!-- ============================= TAP ========================== -->

	<STREAM id="tapexamples">
		<doc>Examples for TAP querying (epnml EPN-TAP services)</doc>

	<!-- Every example answers on the demo (provision.sh demo) and on the test stack:
		tests/test_tap_examples.py runs each one from /tap/examples and wants rows.
		Body-fixed coordinates: CIRCLE and POINT take no ICRS, only an empty
		coordinate system ('', ADQL 2.0; ADQL 2.1 allows leaving it out). -->
	<meta name="_example" title="ICMEs overlapping a time interval">
		ICMEs whose interval overlaps the years 2021 to 2024 (``time_min`` and
		``time_max`` are Julian Days, UTC):

		.. tapquery::

			SELECT granule_uid, time_min, time_max, ml_score, thumbnail_url
			FROM epnml_events.epn_core
			WHERE time_min &lt;= 2460676.5 AND time_max &gt;= 2459215.5
	</meta>
	<meta name="_example" title="Confident detections in Wind data">
		Events the model scored above 0.8, from Wind, with the model version
		that wrote them:

		.. tapquery::

			SELECT granule_uid, time_min, time_max, ml_score, ml_model_version
			FROM epnml_events.epn_core
			WHERE instrument_host_name = 'Wind' AND ml_score &gt; 0.8
			ORDER BY time_min
	</meta>
	<meta name="_example" title="Incremental harvest">
		Rows created or replaced since a date (for mirrors):

		.. tapquery::

			SELECT * FROM epnml_events.epn_core
			WHERE modification_date &gt; '2026-01-01T00:00:00'
	</meta>

	<meta name="_example" title="Dayside bow shock crossings at Mercury">
		Bow shock edges MESSENGER crossed in 2012 between 8 and 16 h MSO
		local time, with their MSO position (km) and the model's score:

		.. tapquery::

			SELECT granule_uid, time_min, crossing_direction, crossing_edge,
			  c1min AS x_mso, c2min AS y_mso, c3min AS z_mso, local_time_min, ml_score
			FROM epnml_crossings.epn_core
			WHERE feature_name = 'bow shock'
			AND local_time_min BETWEEN 8 AND 16
			AND time_min &gt;= 2455927.5 AND time_max &lt; 2456293.5
			ORDER BY time_min
	</meta>

	<meta name="_example" title="Spectral units of Mercury in a region">
		Mercury spectral units whose outline intersects a 5 degree circle
		around (10 E, 0 N) in body-fixed coordinates (empty coordinate system:
		not on the sky), with the link to each unit's mean spectrum and its
		estimated olivine abundance:

		.. tapquery::

			SELECT granule_uid, unit_id, cell_count, abundance_olivine,
			  abundance_sigma_olivine, access_url, thumbnail_url
			FROM epnml_units.epn_core
			WHERE target_name = 'Mercury'
			AND 1 = INTERSECTS(s_region, CIRCLE('', 10, 0, 5))
	</meta>

	<meta name="_example" title="Landforms near a point (spatial)">
		Landforms on Mars whose outline intersects a 4 degree circle around
		(353 E, 10.5 N) in body-fixed coordinates, using the pgSphere index on
		``s_region``:

		.. tapquery::

			SELECT granule_uid, landform_class, ml_score, s_region
			FROM epnml_landforms.epn_core
			WHERE target_name = 'Mars'
			AND 1 = INTERSECTS(s_region, CIRCLE('', 353, 10.5, 4))
	</meta>
	<meta name="_example" title="ML-derived products of every service">
		What the four epnml services hold, by service, product type (``ci``
		catalogue items: events, crossings, landforms; ``ma`` maps: spectral
		units) and target class (EPN-TAP hash lists):

		.. tapquery::

			SELECT service_title, dataproduct_type, target_class, COUNT(*) AS n
			FROM epnml_events.epn_core
			WHERE processing_level &gt;= 5
			GROUP BY service_title, dataproduct_type, target_class
			UNION ALL
			SELECT service_title, dataproduct_type, target_class, COUNT(*) AS n
			FROM epnml_crossings.epn_core
			WHERE processing_level &gt;= 5
			GROUP BY service_title, dataproduct_type, target_class
			UNION ALL
			SELECT service_title, dataproduct_type, target_class, COUNT(*) AS n
			FROM epnml_landforms.epn_core
			WHERE processing_level &gt;= 5
			GROUP BY service_title, dataproduct_type, target_class
			UNION ALL
			SELECT service_title, dataproduct_type, target_class, COUNT(*) AS n
			FROM epnml_units.epn_core
			WHERE processing_level &gt;= 5
			GROUP BY service_title, dataproduct_type, target_class
	</meta>
	</STREAM>

	
	<NXSTREAM id="tapdescription">
		<!-- UAT subjects beside //tap's own (virtual-observatories, catalogs) -->
		<meta name="subject">planetary-science</meta>
		<meta name="subject">solar-system-astronomy</meta>
		<meta name="subject">solar-physics</meta>
		<meta name="description">The \\getConfig{web}{sitename}'s TAP end point.  
			The Table Access Protocol (TAP) lets you execute queries against our
			database tables, inspect various metadata, and upload your own
			data.  It is thus the VO's premier way to access public data
			holdings.

			Tables exposed through this endpoint include: \\tablesForTAP.
		</meta>
	</NXSTREAM>

	<NXSTREAM id="sitewidesiap2-extras">
		<!-- put any items you want to appear in the //siap2#sitewide
		service definition (in particular, metadata) here; it'd be nice if
		you changed the creationDate, at least, as that might aid
		in debugging. 
		
		You should also add 
		testQuery.pos.ra, testQuery.pos.dec,
		testQuery.size.ra, testQuery.size.dec meta item to  describe a field
		that is guaranteed to return at least one result.
		-->
		<meta name="description">
			The \\getConfig{web}{sitename}'s sitewide SIAP version 2 service 
			publishes all the images published through the site.  For more
			advanced queries including uploads, all this data is also available
			through ObsTAP.
		</meta>
		<meta name="creationDate">2016-08-05T12:40:00</meta>
		<meta name="subject">virtual-observatories</meta>
		<meta name="shortName">\\metaString{authority.shortName} SIA2</meta>
		<meta name="title">\getConfig{web}{sitename} SIAP Version 2 Service</meta>
		<meta name="sia.type">Pointed</meta>
	</NXSTREAM>
</resource>
